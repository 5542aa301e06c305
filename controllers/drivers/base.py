"""Device-driver contracts: what a driver is asked, what it answers, and the registry by platform.

Drivers register under the inventory's ``Device.platform`` (``@register("cisco_ios")``);
adding a vendor is adding a module that registers itself. Callers get a driver with
``driver_for(target, runner)`` or a typed one with ``router_for``/``codec_for``/``mcu_for``/
``modem_for``. Every operation is ``async``; the SSH work runs in ``SshRunner``'s thread pool.

Results are frozen dataclasses: what was read (parsed), what was sent (commands, for the audit
trail; never a secret) and how long it took.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from controllers.drivers import validate
from controllers.errors import NoDriver
from inventory.enums import LinkRole
from inventory.secrets import SecretRef

if TYPE_CHECKING:
    from controllers.drivers.session import SshRunner
    from inventory.document import InventoryDoc
    from inventory.model import Device, Link


# ---- what a driver is pointed at ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouterLink:
    """A WAN link a router carries: its interface and the next hop a default route uses."""

    name: str
    role: LinkRole
    interface: str
    next_hop: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """One device as the drivers see it: where it answers and which credentials it takes.

    Credentials are references (``env:``/``file:``), read in the worker thread at connect time;
    they are left out of ``repr``. ``links`` (routers only) map next hops to inventory links.
    """

    name: str
    platform: str
    host: str
    port: int = 22
    username: str = ""
    password: SecretRef | None = field(default=None, repr=False)
    private_key: SecretRef | None = field(default=None, repr=False)
    site: str | None = None
    links: tuple[RouterLink, ...] = ()

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise ValueError(
                f"{self.name}: management address {self.host!r} is not an IP"
            ) from None
        if not 1 <= self.port <= 65535:
            raise ValueError(f"{self.name}: SSH port {self.port} is out of range")
        for link in self.links:
            validate.interface_name(link.interface, device=self.name)

    def link_by_name(self, name: str) -> RouterLink | None:
        return next((lk for lk in self.links if lk.name == name), None)

    @classmethod
    def from_model(cls, device: Device, links: Iterable[Link] = ()) -> DeviceTarget:
        """From the ORM: ``device.ssh_profile`` loaded; ``links`` = ``inventory.model.Link``s
        whose ``router`` is this device (their ``probe_address`` is the next hop)."""
        profile = device.ssh_profile
        if profile is None or not profile.ssh_username:
            raise NoDriver(device.name, "has no SSH profile; give it one in the inventory")
        return cls(
            name=device.name,
            platform=device.platform,
            host=device.mgmt_address,
            port=device.ssh_port,
            username=profile.ssh_username,
            password=SecretRef.parse(profile.ssh_password_ref)
            if profile.ssh_password_ref
            else None,
            private_key=SecretRef.parse(profile.ssh_private_key_ref)
            if profile.ssh_private_key_ref
            else None,
            site=device.site.name if device.site is not None else None,
            links=tuple(
                RouterLink(
                    lk.name,
                    LinkRole(lk.role),
                    lk.interface,
                    ipaddress.IPv4Address(lk.probe_address),
                )
                for lk in links
            ),
        )

    @classmethod
    def from_document(cls, doc: InventoryDoc, device_name: str) -> DeviceTarget:
        """From an inventory document (the lab, tests, the CLI)."""
        for site in doc.sites:
            for dev in site.devices:
                if dev.name != device_name:
                    continue
                profile = next(
                    (p for p in doc.credential_profiles if p.name == dev.ssh_profile), None
                )
                if profile is None or not profile.username:
                    raise NoDriver(dev.name, "has no SSH profile; give it one in the inventory")
                return cls(
                    name=dev.name,
                    platform=dev.platform,
                    host=dev.mgmt_address,
                    port=dev.ssh_port,
                    username=profile.username,
                    password=profile.password,
                    private_key=profile.private_key,
                    site=site.name,
                    links=tuple(
                        RouterLink(
                            lk.name,
                            lk.role,
                            lk.interface,
                            ipaddress.IPv4Address(lk.probe_address),
                        )
                        for lk in site.links
                        if lk.router == dev.name
                    ),
                )
        raise NoDriver(device_name, "is not in the inventory")


# ---- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class StaticDefault:
    """A static default route ``ip route 0.0.0.0 0.0.0.0 <next_hop> <distance>``."""

    next_hop: ipaddress.IPv4Address
    distance: int = 1

    def __str__(self) -> str:
        return f"0.0.0.0/0 via {self.next_hop} [{self.distance}]"


@dataclass(frozen=True, slots=True)
class DefaultRoute:
    """Where a router sends its default traffic, as read from the device.

    ``gateway`` is the gateway of last resort (the routing table); ``installed`` the default
    routes in the table (several: ECMP); ``configured`` the static defaults in the running
    configuration, installed or not (a route via a dead link stays configured); ``link`` the
    inventory link whose next hop is the gateway, if any.
    """

    gateway: ipaddress.IPv4Address | None
    installed: tuple[StaticDefault, ...]
    configured: tuple[StaticDefault, ...]
    link: str | None

    @property
    def distance(self) -> int | None:
        for route in self.installed:
            if route.next_hop == self.gateway:
                return route.distance
        return None


@dataclass(frozen=True, slots=True)
class Verification:
    """A read-back after a change: did the device end up where it was asked to be?"""

    ok: bool
    reason: str
    observed: DefaultRoute | None
    reads: int = 1


@dataclass(frozen=True, slots=True)
class Change:
    """One configuration change as sent: for the audit trail and for ``rollback``.

    ``before``/``after`` are the configured static default routes before and as intended;
    ``commands`` what was sent in configuration mode (empty: the device was already there).
    """

    device: str
    operation: str
    commands: tuple[str, ...]
    before: tuple[StaticDefault, ...]
    after: tuple[StaticDefault, ...]
    started_at: datetime
    duration_s: float
    verification: Verification | None = None
    saved: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.commands)

    def as_audit(self) -> dict[str, object]:
        """A JSON-ready summary (no secrets: there are none in a Change)."""
        return {
            "device": self.device,
            "operation": self.operation,
            "commands": list(self.commands),
            "before": [str(r) for r in self.before],
            "after": [str(r) for r in self.after],
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "verified": None if self.verification is None else self.verification.ok,
            "verification": None if self.verification is None else self.verification.reason,
            "saved": self.saved,
        }


@dataclass(frozen=True, slots=True)
class InterfaceStatus:
    name: str
    address: ipaddress.IPv4Address | None
    status: str  # "up", "down", "administratively down"
    protocol: str  # "up", "down"

    @property
    def up(self) -> bool:
        return self.status == "up" and self.protocol == "up"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command that changed something on a non-router device (what was sent, what came back)."""

    device: str
    commands: tuple[str, ...]
    output: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class CallStatus:
    call_id: int
    status: str  # Connected, Connecting, Dialling, ...
    direction: str  # Incoming / Outgoing
    remote: str
    rate_kbps: int
    tx_kbps: int
    rx_kbps: int
    duration_s: int


@dataclass(frozen=True, slots=True)
class DialResult:
    device: str
    call_id: int
    commands: tuple[str, ...]
    duration_s: float


@dataclass(frozen=True, slots=True)
class McuPorts:
    total: int
    in_use: int
    free: int
    conferences: int


@dataclass(frozen=True, slots=True)
class McuConference:
    name: str
    participants: int


@dataclass(frozen=True, slots=True)
class Participant:
    name: str
    connected: bool
    rate_kbps: int | None


@dataclass(frozen=True, slots=True)
class ModemStatus:
    unit: str
    name: str
    demod_locked: bool
    esno_db: float
    rx_level_dbm: float
    modcod: int
    modcod_name: str
    tx_on: bool
    tx_power_dbm: float
    tx_rate_kbps: float
    rx_rate_kbps: float
    buc_alarm: bool
    lnb_alarm: bool


# ---- contracts --------------------------------------------------------------------------------


@runtime_checkable
class DeviceDriver(Protocol):
    """Any driver: bound to one device."""

    @property
    def target(self) -> DeviceTarget: ...


@runtime_checkable
class RouterDriver(DeviceDriver, Protocol):
    """A WAN router: which link carries the default route, and moving it."""

    async def default_route(self) -> DefaultRoute:
        """Read the routing table and the running configuration."""
        ...

    async def interfaces(self) -> tuple[InterfaceStatus, ...]: ...

    async def set_default_route(
        self, next_hop: ipaddress.IPv4Address | str, distance: int = 1, *, save: bool = False
    ) -> Change:
        """Make ``next_hop`` the only static default, verify, roll back on failure."""
        ...

    async def move_to_link(self, link: str, distance: int = 1, *, save: bool = False) -> Change:
        """``set_default_route`` to the next hop of an inventory link of this router."""
        ...

    async def verify(self, change: Change) -> Verification:
        """Read the device back: is it where ``change`` left it?"""
        ...

    async def rollback(self, change: Change) -> Change:
        """Put the static defaults back as they were before ``change``."""
        ...

    async def save(self) -> Change:
        """``write memory``: the running configuration survives a reload."""
        ...


@runtime_checkable
class CodecDriver(DeviceDriver, Protocol):
    """A video endpoint: its calls, dial, hang up, default call rate."""

    async def calls(self) -> tuple[CallStatus, ...]: ...

    async def dial(self, number: str, rate_kbps: int) -> DialResult: ...

    async def hang_up(self, call_id: int) -> CommandResult: ...

    async def set_default_rate(self, rate_kbps: int) -> CommandResult: ...


@runtime_checkable
class McuDriver(DeviceDriver, Protocol):
    """An MCU: conferences and their participants, video ports."""

    async def ports(self) -> McuPorts: ...

    async def conferences(self) -> tuple[McuConference, ...]: ...

    async def create_conference(self, name: str) -> CommandResult: ...

    async def end_conference(self, name: str) -> CommandResult: ...

    async def add_participant(self, conference: str, endpoint: str) -> CommandResult: ...

    async def remove_participant(self, conference: str, endpoint: str) -> CommandResult: ...

    async def participants(self, conference: str) -> tuple[Participant, ...]: ...


@runtime_checkable
class ModemDriver(DeviceDriver, Protocol):
    """A satellite terminal: RF/demodulator status and the transmitter."""

    async def status(self) -> ModemStatus: ...

    async def set_transmitter(self, on: bool) -> CommandResult: ...


# ---- the registry -----------------------------------------------------------------------------

DriverFactory = Callable[[DeviceTarget, "SshRunner"], DeviceDriver]
F = TypeVar("F", bound=DriverFactory)

_REGISTRY: dict[str, DriverFactory] = {}


def register(*platforms: str) -> Callable[[F], F]:
    """Class decorator: the driver of these platform names (``Device.platform``)."""
    if not platforms:
        raise ValueError("register() needs at least one platform name")

    def decorate(factory: F) -> F:
        for platform in platforms:
            known = _REGISTRY.get(platform)
            if known is not None and known is not factory:
                raise ValueError(f"platform {platform!r} already has a driver: {known!r}")
            _REGISTRY[platform] = factory
        return factory

    return decorate


def registered_platforms() -> list[str]:
    return sorted(_REGISTRY)


def driver_for(target: DeviceTarget, runner: SshRunner) -> DeviceDriver:
    """The registered driver for ``target.platform``."""
    factory = _REGISTRY.get(target.platform)
    if factory is None:
        raise NoDriver(
            target.name,
            f"no driver for platform {target.platform!r}; known platforms: "
            f"{', '.join(registered_platforms()) or 'none'} (fix the inventory or add a driver)",
        )
    return factory(target, runner)


def _not_a(target: DeviceTarget, what: str) -> NoDriver:
    return NoDriver(target.name, f"platform {target.platform!r} has no {what} driver")


def router_for(target: DeviceTarget, runner: SshRunner) -> RouterDriver:
    driver = driver_for(target, runner)
    if not isinstance(driver, RouterDriver):
        raise _not_a(target, "router")
    return driver


def codec_for(target: DeviceTarget, runner: SshRunner) -> CodecDriver:
    driver = driver_for(target, runner)
    if not isinstance(driver, CodecDriver):
        raise _not_a(target, "video endpoint")
    return driver


def mcu_for(target: DeviceTarget, runner: SshRunner) -> McuDriver:
    driver = driver_for(target, runner)
    if not isinstance(driver, McuDriver):
        raise _not_a(target, "MCU")
    return driver


def modem_for(target: DeviceTarget, runner: SshRunner) -> ModemDriver:
    driver = driver_for(target, runner)
    if not isinstance(driver, ModemDriver):
        raise _not_a(target, "satellite terminal")
    return driver
