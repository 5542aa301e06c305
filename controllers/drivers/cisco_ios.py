"""Cisco IOS / IOS-XE routers (platform ``cisco_ios``): the default route, moved and verified.

How a move works (``set_default_route``), all on one SSH session under the device's lock:

1. read ``show ip route`` (gateway of last resort, installed defaults) and ``show running-config``
   (the configured static defaults, installed or not, and interface addresses);
2. plan: the new route first, then ``no ip route`` for every other static default —
   make-before-break, so the router is never without a default while the commands run;
3. send the lines in configuration mode, stopping at the first one IOS rejects;
4. verify by reading back: ``show ip route`` must show the new next hop as the gateway of last
   resort (polled for ``VERIFY_WINDOW_S``), and the running configuration must hold exactly the
   new default route;
5. on a rejected line, a failed verification, a lost session or a timeout: put the previous
   static defaults back (idempotently: re-read, re-plan, re-send; on a new session if the old one
   died) and verify that; then raise with the ``Change`` and the rollback attached;
6. optionally ``write memory``.

Why one Tiandi-owned static default rather than floating statics (several defaults with
different administrative distances): the failover engine's hold-down and flap damping must be
the only thing that moves a site. With floating statics the router would fall back to the
primary by itself the moment its route came back, undoing the hold-down, and a site's real
link would no longer be the one Tiandi believes. The distance is still honoured (kept on the
route Tiandi installs) so that a site that needs a particular value keeps it.

Parsing is pure and tested on captured output (``tests/data/cli``): the routing table with
ntc-templates' TextFSM template ``cisco_ios_show_ip_route`` (it reads the lab's and IOS-XE's
output, ECMP continuation lines included) plus a regex for the gateway line (the template does
not capture it); the running configuration and error lines with small regex parsers.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controllers.drivers import validate
from controllers.drivers.base import (
    Change,
    DefaultRoute,
    DeviceTarget,
    InterfaceStatus,
    RouterLink,
    StaticDefault,
    Verification,
    register,
)
from controllers.drivers.session import SshDriver, SshRunner
from controllers.drivers.textfsm_tables import TableError, parse_table
from controllers.drivers.transport import CliSession
from controllers.errors import (
    CommandRejected,
    DriverError,
    InvalidParameter,
    UnexpectedOutput,
    VerificationFailed,
)

VERIFY_WINDOW_S = 1.0  # how long the routing table may take to show a change
VERIFY_INTERVAL_S = 0.2
ERROR_HEAD_LINES = 3  # an exec command's error is in its first lines (caret, message)

SHOW_ROUTE = "show ip route"
SHOW_RUN = "show running-config"
SHOW_BRIEF = "show ip interface brief"
WRITE_MEMORY = "write memory"

# An IOS error line: "% Invalid input...", "%Inconsistent address and mask", "% Incomplete
# command." — a '%' line that is not a syslog message (%FACILITY-SEVERITY-MNEMONIC:).
IOS_ERROR = re.compile(r"^\s*%\s*(?![A-Z][A-Z0-9_]*-\d-[A-Z0-9_]+:)\S.*$", re.MULTILINE)

_GATEWAY = re.compile(
    r"^Gateway of last resort is (?:(?P<hop>\d{1,3}(?:\.\d{1,3}){3}) to network 0\.0\.0\.0"
    r"|(?P<unset>not set))",
    re.MULTILINE,
)
_DEFAULT_LINE = re.compile(r"^ip route 0\.0\.0\.0 0\.0\.0\.0 (?P<rest>.+?)\s*$", re.MULTILINE)
_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}", re.ASCII)
_INTERFACE_LINE = re.compile(r"^interface (?P<name>\S+)\s*$")
_ADDRESS_LINE = re.compile(r"^ ip address (?P<ip>\S+) (?P<mask>\S+)(?: secondary)?\s*$")


# ---- commands (validated values only) ---------------------------------------------------------


def route_line(route: StaticDefault) -> str:
    return f"ip route 0.0.0.0 0.0.0.0 {route.next_hop} {route.distance}"


def no_route_line(next_hop: ipaddress.IPv4Address) -> str:
    return f"no ip route 0.0.0.0 0.0.0.0 {next_hop}"


def plan_default_routes(
    current: Iterable[StaticDefault], wanted: Iterable[StaticDefault]
) -> tuple[str, ...]:
    """Lines that turn the configured static defaults ``current`` into ``wanted``.

    Additions (or a changed distance on the same next hop, which IOS replaces in place) come
    first, removals last: make-before-break. Empty when nothing needs to change.
    """
    have = list(dict.fromkeys(current))
    want = list(dict.fromkeys(wanted))
    keep_hops = {w.next_hop for w in want}
    adds = [route_line(w) for w in want if w not in have]
    removes = [no_route_line(h) for h in dict.fromkeys(c.next_hop for c in have)
               if h not in keep_hops]  # fmt: skip
    return (*adds, *removes)


# ---- parsing (pure) ---------------------------------------------------------------------------


def find_error(output: str, *, head: int | None = None) -> str | None:
    """The error an IOS answer holds (with the caret line above it), or None.

    ``head``: look at the first lines only. IOS prints a command's error before anything else,
    and a long answer (a running configuration with a ``% Authorized access only`` banner)
    may hold '%' lines that are data.
    """
    if head is not None:
        output = "\n".join(output.splitlines()[:head])
    match = IOS_ERROR.search(output)
    if match is None:
        return None
    lines = output[: match.end()].splitlines()
    if len(lines) >= 2 and lines[-2].strip() == "^":
        return "\n".join(lines[-2:])
    return lines[-1].strip()


def parse_show_ip_route(
    text: str,
) -> tuple[ipaddress.IPv4Address | None, tuple[StaticDefault, ...]]:
    """(gateway of last resort, installed static default routes) from ``show ip route``."""
    match = _GATEWAY.search(text)
    if match is None:
        raise ValueError("no 'Gateway of last resort' line")
    gateway = ipaddress.IPv4Address(match["hop"]) if match["hop"] else None
    try:
        rows = parse_table("cisco_ios_show_ip_route", text)
    except TableError as err:
        raise ValueError(str(err)) from None
    installed: list[StaticDefault] = []
    for row in rows:
        if row["network"] != "0.0.0.0" or row["prefix_length"] != "0":
            continue
        if row["protocol"] != "S" or not row["nexthop_ip"] or not row["distance"]:
            continue
        installed.append(
            StaticDefault(ipaddress.IPv4Address(row["nexthop_ip"]), int(row["distance"]))
        )
    if gateway is not None and installed and gateway not in {r.next_hop for r in installed}:
        # IOS names one of the installed defaults; anything else means we misread the table.
        raise ValueError(f"gateway {gateway} is not among the installed static defaults")
    return gateway, tuple(installed)


def parse_configured_defaults(running_config: str) -> tuple[StaticDefault, ...]:
    """The global static default routes (``ip route 0.0.0.0 0.0.0.0 <hop> [distance] ...``).

    A default route via an interface only, or with an interface and a next hop, is refused: the
    driver does not manage those and would not know how to put one back.
    """
    routes: list[StaticDefault] = []
    for match in _DEFAULT_LINE.finditer(running_config):
        words = match["rest"].split()
        if not _IP.fullmatch(words[0]):
            raise ValueError(
                f"default route 'ip route 0.0.0.0 0.0.0.0 {match['rest']}' goes via an "
                "interface; Tiandi manages next-hop static defaults only — convert it by hand"
            )
        hop = ipaddress.IPv4Address(words[0])
        distance = 1
        if len(words) > 1 and words[1].isdigit():
            distance = int(words[1])
        routes.append(StaticDefault(hop, distance))
    return tuple(routes)


def parse_interface_addresses(running_config: str) -> dict[str, ipaddress.IPv4Interface]:
    """Interface name → primary address with mask, from the running configuration."""
    out: dict[str, ipaddress.IPv4Interface] = {}
    current: str | None = None
    for line in running_config.splitlines():
        head = _INTERFACE_LINE.match(line)
        if head is not None:
            current = head["name"]
            continue
        if not line.startswith(" "):
            current = None
            continue
        addr = _ADDRESS_LINE.match(line)
        if current is not None and addr is not None and current not in out:
            try:
                out[current] = ipaddress.IPv4Interface(f"{addr['ip']}/{addr['mask']}")
            except ValueError:
                continue
    return out


def parse_interface_brief(text: str) -> tuple[InterfaceStatus, ...]:
    """``show ip interface brief`` (ntc-templates ``cisco_ios_show_ip_interface_brief``)."""
    try:
        rows = parse_table("cisco_ios_show_ip_interface_brief", text)
    except TableError as err:
        raise ValueError(str(err)) from None
    out: list[InterfaceStatus] = []
    for row in rows:
        ip = row["ip_address"]
        address = ipaddress.IPv4Address(ip) if _IP.fullmatch(ip) else None
        out.append(InterfaceStatus(row["interface"], address, row["status"], row["proto"]))
    return tuple(out)


def link_for(
    gateway: ipaddress.IPv4Address | None,
    links: Sequence[RouterLink],
    addresses: dict[str, ipaddress.IPv4Interface],
) -> str | None:
    """The inventory link behind a next hop: its own next hop, else the subnet of its interface."""
    if gateway is None:
        return None
    for link in links:
        if link.next_hop == gateway:
            return link.name
    for link in links:
        addr = addresses.get(link.interface)
        if addr is not None and gateway in addr.network:
            return link.name
    return None


def read_default_route(
    route_text: str, running_config: str, links: Sequence[RouterLink]
) -> DefaultRoute:
    gateway, installed = parse_show_ip_route(route_text)
    configured = parse_configured_defaults(running_config)
    addresses = parse_interface_addresses(running_config)
    return DefaultRoute(gateway, installed, configured, link_for(gateway, links, addresses))


def check_moved(observed: DefaultRoute, wanted: StaticDefault, reads: int = 1) -> Verification:
    """Did the router end up with ``wanted`` as its one default, in use?"""
    if observed.gateway != wanted.next_hop:
        now = observed.gateway or "not set"
        why = f"the gateway of last resort is {now}, expected {wanted.next_hop}"
        if wanted.next_hop not in {r.next_hop for r in observed.installed}:
            why += " (the new route is not in the routing table: is its link up?)"
        return Verification(False, why, observed, reads)
    if wanted not in observed.installed:
        return Verification(
            False,
            f"the installed default via {wanted.next_hop} does not have distance {wanted.distance}",
            observed,
            reads,
        )
    if observed.configured != (wanted,):
        extra = ", ".join(str(r) for r in observed.configured)
        return Verification(
            False, f"the running configuration holds other static defaults: {extra}", observed,
            reads,
        )  # fmt: skip
    link = f" (link {observed.link})" if observed.link else ""
    return Verification(True, f"default route via {wanted.next_hop}{link}", observed, reads)


def check_restored(
    observed: DefaultRoute, before: Sequence[StaticDefault], reads: int = 1
) -> Verification:
    """Are the configured static defaults exactly ``before`` again? (Installed or not: the
    previous route may be via a dead link — restoring it is still restoring.)"""
    if set(observed.configured) != set(before):
        have = ", ".join(str(r) for r in observed.configured) or "none"
        want = ", ".join(str(r) for r in before) or "none"
        return Verification(False, f"static defaults are {have}, expected {want}", observed, reads)
    gw = observed.gateway or "not set"
    return Verification(True, f"static defaults restored; gateway of last resort {gw}", observed,
                        reads)  # fmt: skip


# ---- jobs (blocking, run in a worker thread by SshRunner) -------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Progress:
    """How far a change got; read by the event loop if the job dies (timeout, lost session)."""

    before: tuple[StaticDefault, ...] | None = None
    commands: tuple[str, ...] = ()
    started_at: datetime | None = None
    t0: float = 0.0


class _Jobs:
    """The blocking halves of the driver's operations, bound to one target."""

    def __init__(self, target: DeviceTarget) -> None:
        self.target = target
        self.name = target.name

    def read(self, cli: CliSession) -> DefaultRoute:
        route_text = cli.send(SHOW_ROUTE)
        config = cli.send(SHOW_RUN)
        for text, command in ((route_text, SHOW_ROUTE), (config, SHOW_RUN)):
            error = find_error(text, head=ERROR_HEAD_LINES)
            if error is not None:
                raise CommandRejected(self.name, command, error)
        try:
            return read_default_route(route_text, config, self.target.links)
        except ValueError as err:
            raise UnexpectedOutput(self.name, f"{SHOW_ROUTE} / {SHOW_RUN}", str(err)) from None

    def interfaces(self, cli: CliSession) -> tuple[InterfaceStatus, ...]:
        text = cli.send(SHOW_BRIEF)
        error = find_error(text, head=ERROR_HEAD_LINES)
        if error is not None:
            raise CommandRejected(self.name, SHOW_BRIEF, error)
        try:
            return parse_interface_brief(text)
        except ValueError as err:
            raise UnexpectedOutput(self.name, SHOW_BRIEF, str(err)) from None

    def apply(self, cli: CliSession, commands: Sequence[str]) -> None:
        if not commands:
            return
        transcript = cli.configure(commands, IOS_ERROR)
        if transcript.failed is not None:
            error = find_error(transcript.failed.response) or transcript.error or "?"
            raise CommandRejected(self.name, transcript.failed.command, error)

    def verify_moved(self, cli: CliSession, wanted: StaticDefault, window_s: float) -> Verification:
        deadline = time.monotonic() + window_s
        reads = 0
        while True:
            text = cli.send(SHOW_ROUTE)
            reads += 1
            try:
                gateway, installed = parse_show_ip_route(text)
            except ValueError as err:
                raise UnexpectedOutput(self.name, SHOW_ROUTE, str(err)) from None
            if gateway == wanted.next_hop and wanted in installed:
                break
            if time.monotonic() + VERIFY_INTERVAL_S > deadline:
                break
            time.sleep(VERIFY_INTERVAL_S)
        config = cli.send(SHOW_RUN)
        try:
            configured = parse_configured_defaults(config)
            addresses = parse_interface_addresses(config)
        except ValueError as err:
            raise UnexpectedOutput(self.name, SHOW_RUN, str(err)) from None
        observed = DefaultRoute(
            gateway, installed, configured, link_for(gateway, self.target.links, addresses)
        )
        return check_moved(observed, wanted, reads)

    def restore(self, cli: CliSession, before: tuple[StaticDefault, ...]) -> Change:
        """Converge the static defaults back to ``before`` and verify (a rollback)."""
        started, t0 = _now(), time.monotonic()
        current = self.read(cli)
        commands = plan_default_routes(current.configured, before)
        self.apply(cli, commands)
        observed = self.read(cli) if commands else current
        verification = check_restored(observed, before)
        return Change(
            device=self.name,
            operation="rollback",
            commands=commands,
            before=current.configured,
            after=before,
            started_at=started,
            duration_s=time.monotonic() - t0,
            verification=verification,
        )

    def save(self, cli: CliSession) -> str:
        output = cli.send(WRITE_MEMORY)
        error = find_error(output, head=ERROR_HEAD_LINES)
        if error is not None or "[OK]" not in output:
            raise CommandRejected(self.name, WRITE_MEMORY, error or output.strip() or "no [OK]")
        return output

    def move(
        self, cli: CliSession, wanted: StaticDefault, save: bool, progress: _Progress
    ) -> Change:
        progress.started_at, progress.t0 = _now(), time.monotonic()
        state = self.read(cli)
        before = state.configured
        progress.before = before
        commands = plan_default_routes(before, (wanted,))
        progress.commands = commands

        def change(verification: Verification | None = None, saved: bool = False) -> Change:
            assert progress.started_at is not None
            return Change(
                device=self.name,
                operation="set_default_route",
                commands=commands,
                before=before,
                after=(wanted,),
                started_at=progress.started_at,
                duration_s=time.monotonic() - progress.t0,
                verification=verification,
                saved=saved,
            )

        try:
            self.apply(cli, commands)
        except CommandRejected as err:
            raise err.attach(change(), self.restore(cli, before)) from None
        verification = self.verify_moved(cli, wanted, VERIFY_WINDOW_S if commands else 0.0)
        if not verification.ok:
            done = change(verification)
            rollback = self.restore(cli, before) if commands else None
            raise VerificationFailed(self.name, verification, change=done, rollback=rollback)
        if save and commands:
            self.save(cli)
        return change(verification, saved=save and bool(commands))


# ---- the driver ---------------------------------------------------------------------------


@register("cisco_ios")
class CiscoIosRouter(SshDriver):
    """``RouterDriver`` for IOS / IOS-XE over netmiko's ``cisco_ios``."""

    device_type = "cisco_ios"

    def __init__(self, target: DeviceTarget, runner: SshRunner) -> None:
        super().__init__(target, runner)
        self._jobs = _Jobs(target)

    async def default_route(self) -> DefaultRoute:
        return await self._run(self._jobs.read, operation="read the default route")

    async def interfaces(self) -> tuple[InterfaceStatus, ...]:
        return await self._run(self._jobs.interfaces, operation="read the interfaces")

    def _wanted(self, next_hop: object, distance: object) -> StaticDefault:
        hop = validate.next_hop(next_hop, device=self.name)
        dist = validate.distance(distance, device=self.name)
        links = self.target.links
        if links and hop not in {lk.next_hop for lk in links}:
            known = ", ".join(f"{lk.name}={lk.next_hop}" for lk in links)
            raise InvalidParameter(
                self.name, "next hop", f"{hop} is not the next hop of a link of this router "
                f"({known})",
            )  # fmt: skip
        return StaticDefault(hop, dist)

    async def set_default_route(
        self, next_hop: ipaddress.IPv4Address | str, distance: int = 1, *, save: bool = False
    ) -> Change:
        wanted = self._wanted(next_hop, distance)  # before any lock or session
        progress = _Progress()
        async with self._runner.lock(self.name):
            try:
                return await self._run(
                    lambda cli: self._jobs.move(cli, wanted, save, progress),
                    operation=f"move the default route to {wanted.next_hop}",
                )
            except (CommandRejected, VerificationFailed):
                raise  # rolled back (or not) on the same session already
            except DriverError as err:
                raise err.attach(*await self._recover(progress, wanted)) from None

    async def _recover(
        self, progress: _Progress, wanted: StaticDefault
    ) -> tuple[Change | None, Change | None]:
        """The session died mid-change: roll back on a new one (the lock is still held)."""
        if progress.before is None or not progress.commands or progress.started_at is None:
            return None, None  # nothing was sent
        change = Change(
            device=self.name,
            operation="set_default_route",
            commands=progress.commands,
            before=progress.before,
            after=(wanted,),
            started_at=progress.started_at,
            duration_s=time.monotonic() - progress.t0,
        )
        before = progress.before
        try:
            rollback = await self._run(
                lambda cli: self._jobs.restore(cli, before), operation="roll back"
            )
        except DriverError:
            return change, None
        return change, rollback

    async def move_to_link(self, link: str, distance: int = 1, *, save: bool = False) -> Change:
        found = self.target.link_by_name(link)
        if found is None:
            names = ", ".join(lk.name for lk in self.target.links) or "none"
            raise InvalidParameter(self.name, "link", f"{link!r} is not a link of this router "
                                   f"(its links: {names})")  # fmt: skip
        return await self.set_default_route(found.next_hop, distance, save=save)

    async def verify(self, change: Change) -> Verification:
        if change.operation not in ("set_default_route", "rollback"):
            raise InvalidParameter(
                self.name, "change", f"a {change.operation!r} change has nothing to read back"
            )
        state = await self._run(self._jobs.read, operation="verify")
        if change.operation == "set_default_route" and len(change.after) == 1:
            return check_moved(state, change.after[0])
        return check_restored(state, change.after)

    async def rollback(self, change: Change) -> Change:
        async with self._runner.lock(self.name):
            result = await self._run(
                lambda cli: self._jobs.restore(cli, change.before), operation="roll back"
            )
        if result.verification is not None and not result.verification.ok:
            raise VerificationFailed(self.name, result.verification, change=result)
        return result

    async def save(self) -> Change:
        started, t0 = _now(), time.monotonic()
        async with self._runner.lock(self.name):
            await self._run(self._jobs.save, operation=WRITE_MEMORY)
        return Change(
            self.name, "save", (WRITE_MEMORY,), (), (), started, time.monotonic() - t0, saved=True
        )
