"""What to poll: ``PollTarget``s built from the inventory, with credentials resolved.

For each device of the inventory (a document, or the database through
``inventory.store.load_document``): its site and province (the names the metrics are tagged
with), its kind/vendor/platform/model (which pick the profile), the links riding on its
interfaces (a router) or served by it (a satellite terminal), and an ``SnmpTarget`` whose
credentials come from the device's SNMP credential profile, secrets read now through
``SecretRef.resolve``.

Nothing here raises for one device's problem: a device whose profile names a secret that cannot
be read, or that has no SNMP profile at all, gets ``snmp=None`` and a ``CONFIG`` ``problem`` —
polling it records that failure, the others poll on. Each such problem is logged once per
credential profile (loud, ERROR), not once per device or per cycle; an SNMP v2c profile gets a
WARNING once, since v2c is unauthenticated and unencrypted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.orm import Session

from inventory.document import CredentialProfileDoc, InventoryDoc, SiteDoc
from inventory.enums import CredentialKind, DeviceKind, LinkRole, SnmpVersion, Tier
from inventory.errors import SecretUnavailable
from inventory.secrets import SecretRef
from inventory.store import load_document
from monitors.snmp.base import FailureCause, PollFailure, SnmpCredentials, SnmpTarget

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

DEFAULT_TIMEOUT_S: Final = 2.0
DEFAULT_RETRIES: Final = 1

# Interface name abbreviations as IOS/IOS XE, VRP and NX-OS print them (ifName is often the
# short form, ifDescr and the inventory the long one).
_ABBREVIATIONS: Final = (
    ("hundredgigabitethernet", ("hu", "hundredgige")),
    ("fortygigabitethernet", ("fo", "fortygige")),
    ("twentyfivegige", ("twe",)),
    ("tengigabitethernet", ("te", "tengige", "xe", "xgigabitethernet")),
    ("gigabitethernet", ("gi", "ge", "gige")),
    ("fastethernet", ("fa",)),
    ("ethernet", ("et", "eth")),
    ("port-channel", ("po",)),
    ("loopback", ("lo",)),
    ("tunnel", ("tu",)),
    ("serial", ("se",)),
    ("cellular", ("ce",)),
    ("vlan", ("vl",)),
)
_WORD = re.compile(r"^([a-z-]+)\s*(.*)$")


def interface_key(name: str) -> str:
    """A key to match interface names: 'Gi0/0/1' and 'GigabitEthernet0/0/1' both give
    'gigabitethernet0/0/1'."""
    text = name.strip().lower()
    m = _WORD.match(text)
    if not m:
        return text
    word, rest = m.groups()
    for long, shorts in _ABBREVIATIONS:
        if word == long or word in shorts:
            return long + rest
    return word + rest


@dataclass(frozen=True, slots=True)
class LinkRef:
    """A link as a device sees it: on one of its interfaces (router) or served by it (terminal)."""

    link: str
    role: LinkRole
    interface: str | None  # the router interface it rides on; None for a terminal


@dataclass(frozen=True, slots=True)
class PollTarget:
    """One device to poll: who it is, where it is, how to reach it, or why it cannot be."""

    device: str
    site: str
    province: str | None  # the province-tier site it lies in (the ministry: its own name)
    kind: DeviceKind
    vendor: str
    platform: str
    model: str | None
    credential_profile: str | None  # the SNMP credential profile's name
    snmp: SnmpTarget | None  # None: cannot be polled, see ``problem``
    problem: PollFailure | None = None
    links: tuple[LinkRef, ...] = ()

    def link_for_interface(self, name: str) -> LinkRef | None:
        key = interface_key(name)
        for ref in self.links:
            if ref.interface is not None and interface_key(ref.interface) == key:
                return ref
        return None

    @property
    def served_link(self) -> LinkRef | None:
        """The one link a satellite terminal serves (None if none or several)."""
        served = [r for r in self.links if r.interface is None]
        return served[0] if len(served) == 1 else None


@dataclass
class TargetBuilder:
    """Builds targets; keeps what it has already warned about, so each warning comes once.

    The composition root keeps one builder for the life of the process and calls it again when
    the inventory changes.
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    port_offset: int = 0  # added to every device's SNMP port (a lab on high ports)
    _warned: set[str] = field(default_factory=set, repr=False)

    def from_session(self, session: Session) -> list[PollTarget]:
        """Targets for the inventory in the database (read through ``load_document``)."""
        return self.from_document(load_document(session))

    def from_document(self, doc: InventoryDoc) -> list[PollTarget]:
        sites = {s.name: s for s in doc.sites}
        used = {d.snmp_profile for s in doc.sites for d in s.devices}
        creds = self._credentials(p for p in doc.credential_profiles if p.name in used)
        links_of: dict[str, list[LinkRef]] = {}
        for site in doc.sites:
            for lk in site.links:
                links_of.setdefault(lk.router, []).append(LinkRef(lk.name, lk.role, lk.interface))
                if lk.terminal is not None:
                    links_of.setdefault(lk.terminal, []).append(LinkRef(lk.name, lk.role, None))
        out: list[PollTarget] = []
        for site in doc.sites:
            province = _province_of(sites, site)
            for dev in site.devices:
                snmp: SnmpTarget | None = None
                problem: PollFailure | None = None
                if dev.snmp_profile is None:
                    problem = PollFailure(
                        FailureCause.CONFIG,
                        "the device has no SNMP credential profile; set snmp_profile in the "
                        "inventory to poll it",
                    )
                else:
                    resolved = creds.get(dev.snmp_profile)
                    if resolved is None:
                        problem = PollFailure(
                            FailureCause.CONFIG,
                            f"SNMP credential profile {dev.snmp_profile!r} does not exist or is "
                            "not an SNMP profile; fix the inventory",
                        )
                    elif isinstance(resolved, PollFailure):
                        problem = resolved
                    else:
                        snmp = SnmpTarget(
                            device=dev.name,
                            host=dev.mgmt_address,
                            port=dev.snmp_port + self.port_offset,
                            credentials=resolved,
                            timeout_s=self.timeout_s,
                            retries=self.retries,
                        )
                out.append(
                    PollTarget(
                        device=dev.name,
                        site=site.name,
                        province=province,
                        kind=dev.kind,
                        vendor=dev.vendor,
                        platform=dev.platform,
                        model=dev.model,
                        credential_profile=dev.snmp_profile,
                        snmp=snmp,
                        problem=problem,
                        links=tuple(links_of.get(dev.name, ())),
                    )
                )
        return out

    def _credentials(
        self, profiles: Iterable[CredentialProfileDoc]
    ) -> Mapping[str, SnmpCredentials | PollFailure]:
        out: dict[str, SnmpCredentials | PollFailure] = {}
        for p in profiles:
            if p.kind is not CredentialKind.SNMP or p.snmp_version is None:
                continue
            try:
                out[p.name] = SnmpCredentials(
                    version=p.snmp_version,
                    community=_read(p.community),
                    user=p.user,
                    auth_protocol=p.auth_protocol,
                    auth_key=_read(p.auth_key),
                    priv_protocol=p.priv_protocol,
                    priv_key=_read(p.priv_key),
                )
            except SecretUnavailable as err:
                failure = PollFailure(FailureCause.CONFIG, f"credential profile {p.name!r}: {err}")
                out[p.name] = failure
                self._once(
                    f"secret:{p.name}",
                    logging.ERROR,
                    "SNMP credential profile %s cannot be used, its devices are not polled: %s",
                    p.name,
                    err,
                )
                continue
            self._warned.discard(f"secret:{p.name}")  # readable again: warn again if lost
            if p.snmp_version is SnmpVersion.V2C:
                self._once(
                    f"v2c:{p.name}",
                    logging.WARNING,
                    "SNMP v2c is unauthenticated and unencrypted: credential profile %s sends "
                    "its community in clear text across the carriers' networks; move it to v3 "
                    "authPriv",
                    p.name,
                )
        return out

    def _once(self, key: str, level: int, message: str, *args: object) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        log.log(level, message, *args)


def _read(ref: SecretRef | None) -> str | None:
    return ref.resolve() if ref is not None else None


def _province_of(sites: Mapping[str, SiteDoc], site: SiteDoc) -> str | None:
    seen: set[str] = set()
    current: SiteDoc | None = site
    while current is not None and current.name not in seen:
        if current.tier in (Tier.PROVINCE, Tier.MINISTRY):
            return current.name
        seen.add(current.name)
        current = sites.get(current.parent) if current.parent else None
    return None


def build_targets(
    doc: InventoryDoc,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    port_offset: int = 0,
) -> list[PollTarget]:
    """One-off convenience: ``TargetBuilder(...).from_document(doc)``."""
    return TargetBuilder(timeout_s, retries, port_offset).from_document(doc)
