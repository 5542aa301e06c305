"""Who may do what: three roles, each including everything the one below it may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """``viewer`` (NOC staff) reads; ``operator`` (network engineers) also runs control actions and
    books conferences; ``admin`` also changes the inventory and the users."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """True if a holder of this role may do what ``needed`` guards."""
        return self.rank >= needed.rank

    @classmethod
    def lowest(cls, *roles: Role) -> Role:
        return min(roles, key=lambda r: r.rank)


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
