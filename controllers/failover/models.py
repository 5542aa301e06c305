"""Failover tables: each site's state, every event, change intents, pins, approvals.

Times are timezone-aware UTC (:class:`controllers.audit.UTCDateTime`). Current state and pins
point at inventory rows (they go when the site or link goes); events and changes are history
and name sites and links as text, so they survive a rename or a deletion.

A change is written as an ``intent`` row *before* the router is touched and marked ``done``,
``failed`` or ``rolled_back`` after it is verified: a row still ``intent`` after a restart is a
change the engine must finish or roll back.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controllers.audit import UTCDateTime
from inventory.model import Base


class ChangeStatus(enum.StrEnum):
    INTENT = "intent"  # written before acting; still so after a crash = half-done
    DONE = "done"  # made and verified
    FAILED = "failed"  # not made (refused, unreachable before any command): nothing to undo
    ROLLED_BACK = "rolled_back"  # made or half made, then undone
    RECOVERED = "recovered"  # found half-done after a restart and finished (router had it)


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # approved, being carried out
    EXECUTED = "executed"  # approved and carried out (see result)
    FAILED = "failed"  # approved, but carrying it out failed (see result)
    REJECTED = "rejected"
    EXPIRED = "expired"


class FailoverSiteState(Base):
    """The latest known state of one site's failover, rebuilt into the machine at start."""

    __tablename__ = "failover_site_states"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    current_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("links.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # router confirmed

    def __repr__(self) -> str:
        return f"FailoverSiteState(site_id={self.site_id}, state={self.state!r})"


class FailoverPin(Base):
    """A pin keeps a site on one link until it expires or is released."""

    __tablename__ = "failover_pins"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # operator | damping
    actor: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(160))


class FailoverChange(Base):
    """One attempt to move a site's default route: intent first, outcome after."""

    __tablename__ = "failover_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(String(63), index=True)
    from_link: Mapped[str | None] = mapped_column(String(63))
    to_link: Mapped[str] = mapped_column(String(63))
    cause: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text)
    numbers: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    commands: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    verification: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    approval_id: Mapped[int | None] = mapped_column(
        ForeignKey("failover_approvals.id", ondelete="SET NULL")
    )


class FailoverEvent(Base):
    """Everything the engine decided and did, with the reason and the numbers behind it."""

    __tablename__ = "failover_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    site: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    cause: Mapped[str | None] = mapped_column(String(16))
    from_link: Mapped[str | None] = mapped_column(String(63))
    to_link: Mapped[str | None] = mapped_column(String(63))
    state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    numbers: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    commands: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    verification: Mapped[str | None] = mapped_column(Text)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(160))
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("failover_changes.id", ondelete="SET NULL"), index=True
    )

    def __repr__(self) -> str:
        return f"FailoverEvent(id={self.id}, site={self.site!r}, kind={self.kind!r})"


class FailoverApproval(Base):
    """A high-impact manual action waiting for a second person."""

    __tablename__ = "failover_approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # switch | pin
    sites: Mapped[Any] = mapped_column(JSON)  # list of site names
    link: Mapped[str] = mapped_column(String(63))  # a link name, or a role for many sites
    params: Mapped[Any] = mapped_column(JSON)  # e.g. {"minutes": 60}
    reason: Mapped[str] = mapped_column(Text)
    why_needed: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(160))  # actor, as the audit names it
    requester: Mapped[str] = mapped_column(String(64), index=True)  # the user behind it
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(160))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
