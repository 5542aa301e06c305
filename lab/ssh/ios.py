"""The Cisco IOS-XE CLI of a lab router (platform ``cisco_ios``): pure line-in, text-out logic.

A small command tree does what the IOS parser does: keywords may be abbreviated to any unique
prefix (``sh ip int br``, ``conf t``, ``wr``), a prefix shared by two keywords is ambiguous, a
line that stops early is incomplete, and anything else is rejected with the caret under the
first word the parser could not take. Keywords IOS has but the lab does not implement are in the
tree too (``hidden``) so that abbreviations are exactly as ambiguous as on a real router; typing
one is answered as invalid input.

Route and interface changes act on ``LabNetwork`` and re-route the site's traffic at once, as a
router does. ``write memory`` keeps the routes in ``Device.saved_routes`` (the startup-config);
``reload_config`` is what a reload does with them.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inventory.enums import DeviceKind
from lab.ssh import ios_show
from lab.ssh.cli import CliContext, CliMemory, Reply, memory_of, register_cli, split_words
from lab.state import Device, Interface, LabNetwork, StaticRoute
from lab.traffic import reroute_site

Words = Sequence[tuple[str, int]]
ArgValue = str | int | Interface

INVALID = "% Invalid input detected at '^' marker.\n"
INCOMPLETE = "% Incomplete command.\n"
CONFIG_BANNER = "Enter configuration commands, one per line.  End with CNTL/Z.\n"
DEFAULT_TERMINAL_LENGTH = 24
MAX_DESCRIPTION = 200


# ---- argument types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArgType:
    """An argument: ``take(line, words, i, device)`` → (value, words used) or None."""

    label: str
    take: Callable[[str, Words, int, Device], tuple[ArgValue, int] | None]


def _take_ipv4(line: str, words: Words, i: int, device: Device) -> tuple[ArgValue, int] | None:
    text = words[i][0]
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return None
    return ".".join(str(int(p)) for p in parts), 1


def _range(low: int, high: int) -> ArgType:
    def take(line: str, words: Words, i: int, device: Device) -> tuple[ArgValue, int] | None:
        text = words[i][0]
        if not text.isdigit():
            return None
        value = int(text)
        return (value, 1) if low <= value <= high else None

    return ArgType(f"<{low}-{high}>", take)


def _take_rest(line: str, words: Words, i: int, device: Device) -> tuple[ArgValue, int] | None:
    return line[words[i][1] :].rstrip(), len(words) - i


_IFACE_RE = re.compile(r"^([A-Za-z][A-Za-z-]*?)([0-9][0-9/.:]*)?$")
_IFNUM_RE = re.compile(r"^[0-9][0-9/.:]*$")


def _take_interface(line: str, words: Words, i: int, device: Device) -> tuple[ArgValue, int] | None:
    m = _IFACE_RE.match(words[i][0])
    if m is None:
        return None
    prefix, number = m.group(1).lower(), m.group(2)
    used = 1
    if number is None:
        if i + 1 >= len(words) or not _IFNUM_RE.match(words[i + 1][0]):
            return None
        number, used = words[i + 1][0], 2
    types = {re.sub(r"[0-9/.:]+$", "", iface.name) for iface in device.interfaces}
    exact = [t for t in types if t.lower() == prefix]
    matches = exact or [t for t in types if t.lower().startswith(prefix)]
    if len(matches) != 1:
        return None
    iface = device.interface_by_name(matches[0] + number)
    return (iface, used) if iface is not None else None


IPV4 = ArgType("A.B.C.D", _take_ipv4)
REST = ArgType("LINE", _take_rest)
INTERFACE = ArgType("interface", _take_interface)
DISTANCE = _range(1, 255)
TERMINAL_SIZE = _range(0, 512)


# ---- the command tree -----------------------------------------------------------------------


@dataclass
class Parsed:
    words: list[str] = field(default_factory=list)  # the full keywords matched
    args: list[ArgValue] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)  # where each argument starts

    def ip(self, n: int) -> str:
        value = self.args[n]
        assert isinstance(value, str)
        return value

    def number(self, n: int) -> int:
        value = self.args[n]
        assert isinstance(value, int)
        return value

    def interface(self, n: int) -> Interface:
        value = self.args[n]
        assert isinstance(value, Interface)
        return value

    def text(self, n: int) -> str:
        return self.ip(n)


Action = Callable[["IosSession", Parsed], "str | Reply"]


@dataclass
class Node:
    keyword: str | None = None
    arg: ArgType | None = None
    children: list[Node] = field(default_factory=list)
    action: Action | None = None
    hidden: bool = False


def kw(keyword: str, *children: Node, action: Action | None = None) -> Node:
    return Node(keyword=keyword, children=list(children), action=action)


def arg(kind: ArgType, *children: Node, action: Action | None = None) -> Node:
    return Node(arg=kind, children=list(children), action=action)


def hidden(*keywords: str) -> list[Node]:
    return [Node(keyword=k, hidden=True) for k in keywords]


@dataclass(frozen=True, slots=True)
class Match:
    action: Action
    parsed: Parsed


@dataclass(frozen=True, slots=True)
class Invalid:
    column: int


@dataclass(frozen=True, slots=True)
class Incomplete:
    pass


@dataclass(frozen=True, slots=True)
class Ambiguous:
    pass


ParseResult = Match | Invalid | Incomplete | Ambiguous


def parse(root: Node, line: str, device: Device) -> ParseResult:
    """Walk ``root`` with the words of ``line``."""
    words = split_words(line)
    node = root
    parsed = Parsed()
    i = 0
    while i < len(words):
        token, column = words[i]
        low = token.lower()
        keywords = [c for c in node.children if c.keyword is not None and c.keyword.startswith(low)]
        exact = [c for c in keywords if c.keyword == low]
        chosen: Node | None = None
        used = 1
        if exact:
            chosen = exact[0]
        elif len(keywords) == 1:
            chosen = keywords[0]
        elif len(keywords) > 1:
            return Ambiguous()
        else:
            for child in node.children:
                if child.arg is None:
                    continue
                taken = child.arg.take(line, words, i, device)
                if taken is not None:
                    value, used = taken
                    parsed.args.append(value)
                    parsed.columns.append(column)
                    chosen = child
                    break
        if chosen is None or chosen.hidden:
            return Invalid(column)
        if chosen.keyword is not None:
            parsed.words.append(chosen.keyword)
        node = chosen
        i += used
    if node.action is None:
        return Incomplete()
    return Match(node.action, parsed)


# ---- the session ----------------------------------------------------------------------------

EXEC, CONFIG, CONFIG_IF = "exec", "config", "config-if"


class IosSession:
    """One vty login on a lab router. Starts privileged (``#``), like a privilege-15 user."""

    def __init__(self, net: LabNetwork, device: Device, context: CliContext) -> None:
        self.net = net
        self.device = device
        self.memory: CliMemory = context.memory
        self.enable_secret = context.enable_secret
        self.mode = EXEC
        self.privileged = True
        self.interface: Interface | None = None
        self.terminal_length = DEFAULT_TERMINAL_LENGTH
        self.terminal_width = 80
        self._pending: Callable[[str], Reply] | None = None
        self._enable_tries = 0

    # -- prompts --

    @property
    def prompt(self) -> str:
        host = self.device.name
        if self.mode == CONFIG:
            return f"{host[:20]}(config)#"
        if self.mode == CONFIG_IF:
            return f"{host[:20]}(config-if)#"
        return f"{host}{'#' if self.privileged else '>'}"

    # -- CliSession --

    def start(self) -> Reply:
        return Reply("\n", self.prompt)

    def interrupt(self, char: str) -> Reply:
        self._pending = None
        shown = "^Z" if char == "\x1a" else "^C"
        if self.mode != EXEC:
            self.mode, self.interface = EXEC, None
        return Reply(f"{shown}\n", self.prompt)

    def handle(self, line: str) -> Reply:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending(line)
        if not line.strip() or line.lstrip().startswith("!"):
            return Reply("", self.prompt)  # an empty line, or a comment as in pasted configs
        if self.mode == EXEC:
            tree = PRIV_TREE if self.privileged else USER_TREE
            return self._answer(parse(tree, line, self.device), line)
        if self.mode == CONFIG:
            return self._answer(parse(CONFIG_TREE, line, self.device), line)
        result = parse(CONFIG_IF_TREE, line, self.device)
        if not isinstance(result, Match):
            fallback = parse(CONFIG_TREE, line, self.device)
            if isinstance(fallback, Match):
                # IOS runs a global command typed in a sub-mode, and leaves the sub-mode.
                self.mode, self.interface = CONFIG, None
                result = fallback
        return self._answer(result, line)

    def _answer(self, result: ParseResult, line: str) -> Reply:
        outcome = self._outcome(result, line)
        if isinstance(outcome, Reply):
            return outcome
        return Reply(outcome, self.prompt, page_length=self.terminal_length)

    def _outcome(self, result: ParseResult, line: str) -> str | Reply:
        if isinstance(result, Match):
            return result.action(self, result.parsed)
        if isinstance(result, Invalid):
            caret = " " * (len(self.prompt) + result.column) + "^"
            return f"{caret}\n{INVALID}\n"
        if isinstance(result, Incomplete):
            return f"{INCOMPLETE}\n"
        return f'% Ambiguous command:  "{line.strip()}"\n'

    def run_exec(self, line: str) -> str | Reply:
        """``do LINE`` in a config mode: an exec command (``line`` keeps its columns)."""
        return self._outcome(parse(PRIV_TREE, line, self.device), line)

    # -- pending questions --

    def ask(self, prompt: str, then: Callable[[str], Reply], *, echo: bool = True) -> Reply:
        self._pending = then
        return Reply("", prompt, echo=echo)

    def _enable_password(self, line: str) -> Reply:
        secret = self.enable_secret
        if secret is not None and hmac.compare_digest(line.encode(), secret.encode()):
            self.privileged, self._enable_tries = True, 0
            return Reply("", self.prompt)
        self._enable_tries += 1
        if self._enable_tries >= 3:
            self._enable_tries = 0
            return Reply("% Bad secrets\n\n", self.prompt)
        return self.ask("Password: ", self._enable_password, echo=False)

    def begin_enable(self) -> Reply:
        return self.ask("Password: ", self._enable_password, echo=False)

    def copy_destination(self, line: str) -> Reply:
        answer = line.strip() or "startup-config"
        if answer.lower() not in ("startup-config", "nvram:startup-config"):
            return Reply(f"%Error opening {answer} (Permission denied)\n", self.prompt)
        return Reply(self.save(), self.prompt)

    # -- actions --

    def save(self) -> str:
        self.device.saved_routes = [
            StaticRoute(r.prefix, r.mask, r.next_hop, r.distance) for r in self.device.static_routes
        ]
        self.memory.save(self.device.name)
        return "Building configuration...\n[OK]\n"

    def changed(self) -> None:
        reroute_site(self.net, self.device.site)

    def own_address(self, address: str) -> bool:
        return any(
            i.ip_address and i.ip_address.split("/")[0] == address for i in self.device.interfaces
        )


# ---- exec actions ---------------------------------------------------------------------------


def _show_version(s: IosSession, p: Parsed) -> str:
    return ios_show.show_version(s.device, s.net.now())


def _show_running(s: IosSession, p: Parsed) -> str:
    return ios_show.show_running_config(s.net, s.memory, s.device)


def _show_running_interface(s: IosSession, p: Parsed) -> str:
    return ios_show.show_running_interface(s.net, s.memory, s.device, p.interface(0))


def _show_startup(s: IosSession, p: Parsed) -> str:
    return ios_show.show_startup_config(s.net, s.memory, s.device)


def _show_ip_int_brief(s: IosSession, p: Parsed) -> str:
    return ios_show.show_ip_interface_brief(s.device)


def _show_interfaces(s: IosSession, p: Parsed) -> str:
    ifaces = [p.interface(0)] if p.args else s.device.interfaces
    return ios_show.show_interfaces(s.net, s.memory, s.device, ifaces, s.net.now())


def _show_ip_route(s: IosSession, p: Parsed) -> str:
    only = next((w for w in p.words if w in ("static", "connected")), None)
    return ios_show.show_ip_route(s.net, s.device, only)


def _terminal_length(s: IosSession, p: Parsed) -> str:
    s.terminal_length = p.number(0)
    return ""


def _terminal_width(s: IosSession, p: Parsed) -> str:
    s.terminal_width = p.number(0)
    return ""


def _nothing(s: IosSession, p: Parsed) -> str:
    return ""


def _configure(s: IosSession, p: Parsed) -> str:
    s.mode = CONFIG
    return CONFIG_BANNER


def _write(s: IosSession, p: Parsed) -> str:
    return s.save()


def _disable(s: IosSession, p: Parsed) -> str:
    s.privileged = False
    return ""


def _enable(s: IosSession, p: Parsed) -> str | Reply:
    return "" if s.privileged else s.begin_enable()


def _exit_exec(s: IosSession, p: Parsed) -> Reply:
    return Reply("", "", close=True)


def _copy_start(s: IosSession, p: Parsed) -> Reply:
    return s.ask("Destination filename [startup-config]? ", s.copy_destination)


# ---- config actions -------------------------------------------------------------------------


def _check_route(s: IosSession, prefix: str, mask: str) -> str | None:
    try:
        network = ipaddress.IPv4Network(f"{prefix}/{mask}")
    except ValueError:
        return "%Inconsistent address and mask\n"
    if str(network.netmask) != mask:
        return "%Inconsistent address and mask\n"
    return None


def _ip_route(s: IosSession, p: Parsed) -> str:
    prefix, mask, hop = p.ip(0), p.ip(1), p.ip(2)
    distance = p.number(3) if len(p.args) > 3 else 1
    problem = _check_route(s, prefix, mask)
    if problem:
        return problem
    if s.own_address(hop):
        return "%Invalid next hop address (it's this router)\n"
    routes = s.device.static_routes
    for route in routes:
        if (route.prefix, route.mask, route.next_hop) == (prefix, mask, hop):
            route.distance = distance
            break
    else:
        routes.append(StaticRoute(prefix, mask, hop, distance))
    s.changed()
    return ""


def _no_ip_route(s: IosSession, p: Parsed) -> str:
    prefix, mask = p.ip(0), p.ip(1)
    hop = p.ip(2) if len(p.args) > 2 else None
    distance = p.number(3) if len(p.args) > 3 else None
    problem = _check_route(s, prefix, mask)
    if problem:
        return problem

    def doomed(r: StaticRoute) -> bool:
        return (
            (r.prefix, r.mask) == (prefix, mask)
            and (hop is None or r.next_hop == hop)
            and (distance is None or r.distance == distance)
        )

    keep = [r for r in s.device.static_routes if not doomed(r)]
    if len(keep) == len(s.device.static_routes):
        return "%No matching route to delete\n"
    s.device.static_routes[:] = keep
    s.changed()
    return ""


def _interface(s: IosSession, p: Parsed) -> str:
    s.mode, s.interface = CONFIG_IF, p.interface(0)
    return ""


def _end(s: IosSession, p: Parsed) -> str:
    s.mode, s.interface = EXEC, None
    return ""


def _exit_config(s: IosSession, p: Parsed) -> str:
    if s.mode == CONFIG_IF:
        s.mode, s.interface = CONFIG, None
    else:
        s.mode = EXEC
    return ""


def _do(s: IosSession, p: Parsed) -> str | Reply:
    return s.run_exec(" " * p.columns[0] + p.text(0))  # carets stay under the typed line


def _shutdown(s: IosSession, p: Parsed) -> str:
    assert s.interface is not None
    s.interface.admin_up = False
    s.changed()
    return ""


def _no_shutdown(s: IosSession, p: Parsed) -> str:
    assert s.interface is not None
    s.interface.admin_up = True
    s.changed()
    return ""


def _description(s: IosSession, p: Parsed) -> str:
    assert s.interface is not None
    s.memory.set_description(s.device.name, s.interface.name, p.text(0)[:MAX_DESCRIPTION])
    return ""


def _no_description(s: IosSession, p: Parsed) -> str:
    assert s.interface is not None
    s.memory.set_description(s.device.name, s.interface.name, "")
    return ""


# ---- trees ----------------------------------------------------------------------------------

_SHOW_HIDDEN = hidden(
    "aaa", "access-lists", "arp", "cdp", "clock", "controllers", "debugging", "environment",
    "file", "flash:", "history", "hosts", "inventory", "ipv6", "license", "line", "logging",
    "memory", "platform", "policy-map", "privilege", "processes", "redundancy", "reload",
    "route-map", "sessions", "snmp", "spanning-tree", "ssh", "standby", "tech-support",
    "terminal", "users", "vlan",
)  # fmt: skip

_SHOW_IP_HIDDEN = hidden(
    "access-lists", "arp", "bgp", "cache", "cef", "dhcp", "eigrp", "flow", "http", "igmp",
    "nat", "nbar", "ospf", "pim", "protocols", "rip", "sla", "ssh", "traffic", "vrf",
)  # fmt: skip


def _show_tree() -> Node:
    interfaces_arg = arg(INTERFACE, action=_show_interfaces)
    return kw(
        "show",
        kw("version", action=_show_version),
        kw("running-config", kw("interface", arg(INTERFACE, action=_show_running_interface)),
           action=_show_running),
        kw("startup-config", action=_show_startup),
        kw(
            "ip",
            kw("interface", kw("brief", action=_show_ip_int_brief)),
            kw(
                "route",
                kw("static", action=_show_ip_route),
                kw("connected", action=_show_ip_route),
                action=_show_ip_route,
            ),
            *_SHOW_IP_HIDDEN,
        ),
        kw("interfaces", interfaces_arg, *hidden("counters", "description", "status", "summary"),
           action=_show_interfaces),
        *_SHOW_HIDDEN,
    )  # fmt: skip


def _exec_tree(privileged: bool) -> Node:
    terminal = kw(
        "terminal",
        kw("length", arg(TERMINAL_SIZE, action=_terminal_length)),
        kw("width", arg(TERMINAL_SIZE, action=_terminal_width)),
        kw("monitor", action=_nothing),
        kw("no", kw("monitor", action=_nothing)),
        *hidden("exec", "history", "ip", "escape-character", "international"),
    )
    common = [
        _show_tree(),
        terminal,
        kw("enable", action=_enable),
        kw("exit", action=_exit_exec),
        kw("logout", action=_exit_exec),
        kw("quit", action=_exit_exec),
        *hidden("connect", "disconnect", "help", "ping", "resume", "ssh", "telnet", "traceroute"),
        *hidden("access-enable", "access-profile", "where", "systat", "mrinfo", "lock"),
    ]
    if not privileged:
        return Node(children=common)
    return Node(
        children=[
            *common,
            kw("configure", kw("terminal", action=_configure), *hidden("memory", "network",
               "replace", "confirm", "revert")),
            kw("write", kw("memory", action=_write), *hidden("erase", "network", "terminal"),
               action=_write),
            kw("copy", kw("running-config", kw("startup-config", action=_copy_start),
                          *hidden("flash:", "bootflash:", "ftp:", "scp:", "tftp:")),
               *hidden("startup-config", "bootflash:", "flash:", "ftp:", "scp:", "tftp:")),
            kw("disable", action=_disable),
            *hidden("archive", "cd", "clear", "clock", "debug", "delete", "dir", "erase",
                    "format", "mkdir", "more", "no", "pwd", "reload", "rename", "rmdir",
                    "send", "set", "setup", "test", "undebug", "verify", "license",
                    "monitor", "request", "platform"),
        ]
    )  # fmt: skip


_CONFIG_HIDDEN = hidden(
    "aaa", "access-list", "alias", "archive", "banner", "boot", "cdp", "class-map", "clock",
    "crypto", "default", "enable", "hostname", "ipv6", "key", "line", "logging", "ntp",
    "policy-map", "route-map", "router", "service", "snmp-server", "username", "vrf",
)  # fmt: skip

_CONFIG_IP_HIDDEN = hidden(
    "access-list", "cef", "dhcp", "domain", "flow", "ftp", "http", "name-server", "nat",
    "prefix-list", "scp", "sla", "ssh", "tcp", "tftp",
)  # fmt: skip


def _route_args(action: Action) -> Node:
    """``A.B.C.D A.B.C.D A.B.C.D [<1-255>]`` — prefix, mask, next hop, distance."""
    return arg(
        IPV4,
        arg(IPV4, arg(IPV4, arg(DISTANCE, action=action), action=action)),
    )


def _no_route_args() -> Node:
    return arg(
        IPV4,
        arg(
            IPV4,
            arg(IPV4, arg(DISTANCE, action=_no_ip_route), action=_no_ip_route),
            action=_no_ip_route,
        ),
    )


def _config_tree() -> Node:
    return Node(
        children=[
            kw("interface", arg(INTERFACE, action=_interface)),
            kw("ip", kw("route", _route_args(_ip_route), *hidden("static", "vrf")),
               *_CONFIG_IP_HIDDEN),
            kw("no", kw("ip", kw("route", _no_route_args()), *_CONFIG_IP_HIDDEN),
               *_CONFIG_HIDDEN),
            kw("do", arg(REST, action=_do)),
            kw("end", action=_end),
            kw("exit", action=_exit_config),
            *_CONFIG_HIDDEN,
        ]
    )  # fmt: skip


_IF_HIDDEN = hidden(
    "arp", "bandwidth", "carrier-delay", "cdp", "channel-group", "crypto", "delay", "duplex",
    "encapsulation", "ip", "ipv6", "keepalive", "load-interval", "mtu", "negotiation",
    "service-policy", "speed", "standby", "vrf",
)  # fmt: skip


def _config_if_tree() -> Node:
    return Node(
        children=[
            kw("description", arg(REST, action=_description)),
            kw("shutdown", action=_shutdown),
            kw("no", kw("shutdown", action=_no_shutdown),
               kw("description", action=_no_description), *_IF_HIDDEN),
            kw("do", arg(REST, action=_do)),
            kw("end", action=_end),
            kw("exit", action=_exit_config),
            *_IF_HIDDEN,
        ]
    )  # fmt: skip


PRIV_TREE = _exec_tree(privileged=True)
USER_TREE = _exec_tree(privileged=False)
CONFIG_TREE = _config_tree()
CONFIG_IF_TREE = _config_if_tree()


def reload_config(device: Device, memory: CliMemory | None = None) -> None:
    """What a reload does to the configuration: the startup-config becomes the running one.

    Static routes come back from ``saved_routes``; interfaces come up as configured at boot
    (the lab saves no ``shutdown``, so all come up administratively); the saved interface
    descriptions come back too (from ``memory``, else from the SSH face serving the device).
    Call ``lab.traffic.reroute_site`` after the device is powered again.
    """
    memory = memory if memory is not None else memory_of(device)
    device.static_routes = [
        StaticRoute(r.prefix, r.mask, r.next_hop, r.distance) for r in device.saved_routes
    ]
    for iface in device.interfaces:
        iface.admin_up = True
    if memory is not None:
        memory.restore(device.name)


register_cli("cisco_ios", IosSession, kind=DeviceKind.ROUTER)
