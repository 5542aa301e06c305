"""The contract between a device's CLI logic and the SSH transport that carries it.

A CLI session is pure: it takes one input line and returns what the device prints and the
prompt it shows next, reading and changing ``LabNetwork`` state on the way. It never touches a
socket, a clock other than ``net.now()``, or the event loop, so it is unit-tested with golden
outputs. ``lab/ssh/server.py`` only moves bytes: echo, CR/LF, paging, line assembly.

CLIs register under the inventory's platform name (the netmiko ``device_type`` or Tiandi driver
name a ``Device.platform`` holds); ``session_for`` falls back on the device kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from inventory.enums import DeviceKind
from lab.state import Device, LabNetwork


@dataclass(frozen=True, slots=True)
class Reply:
    """What a device prints after a line, and how the terminal behaves next.

    ``output`` uses ``\\n`` line ends (the transport sends CR LF); when not empty it ends with
    ``\\n``. ``prompt`` is printed after it, without a line end. ``echo=False`` means the next
    line is a secret (a password prompt) and must not be echoed. ``page_length`` > 0 asks the
    transport to page ``output`` with ``--More--`` like IOS does (0 = no paging).
    """

    output: str
    prompt: str
    echo: bool = True
    close: bool = False
    page_length: int = 0


class CliSession(Protocol):
    """One login on one device. ``start`` gives the login banner and the first prompt."""

    def start(self) -> Reply: ...

    def handle(self, line: str) -> Reply: ...

    def interrupt(self, char: str) -> Reply:
        """Ctrl-C (``\\x03``) or Ctrl-Z (``\\x1a``) typed at the prompt."""
        ...


@dataclass
class CliMemory:
    """What the CLIs remember beyond ``LabNetwork`` (shared by every session of the lab).

    Interface descriptions (running and saved), the last call id handed out per codec and
    which calls were incoming (``Call`` has no direction).
    """

    descriptions: dict[tuple[str, str], str] = field(default_factory=dict)
    saved_descriptions: dict[tuple[str, str], str] = field(default_factory=dict)
    last_call_id: dict[str, int] = field(default_factory=dict)
    incoming: set[tuple[str, int]] = field(default_factory=set)

    def description(self, device: str, interface: str) -> str | None:
        return self.descriptions.get((device, interface.lower()))

    def set_description(self, device: str, interface: str, text: str | None) -> None:
        key = (device, interface.lower())
        if text is None:
            self.descriptions.pop(key, None)
        else:
            self.descriptions[key] = text

    def save(self, device: str) -> None:
        """``write memory``: the running descriptions become the startup ones."""
        for key in [k for k in self.saved_descriptions if k[0] == device]:
            del self.saved_descriptions[key]
        for key, text in self.descriptions.items():
            if key[0] == device:
                self.saved_descriptions[key] = text

    def restore(self, device: str) -> None:
        """A reload: the running descriptions become the startup ones again."""
        for key in [k for k in self.descriptions if k[0] == device]:
            del self.descriptions[key]
        for key, text in self.saved_descriptions.items():
            if key[0] == device:
                self.descriptions[key] = text

    def new_call_id(self, device: Device) -> int:
        """A codec's next CallId: never reused while the codec runs, like a real one."""
        taken = max((c.call_id for c in device.calls), default=0)
        value = max(self.last_call_id.get(device.name, 0), taken) + 1
        self.last_call_id[device.name] = value
        return value


# Which CliMemory holds a served device's descriptions, so that ``reload_config(device)`` —
# called by the fault controller with the device only — restores them too. Keyed by id():
# ``Device`` is an unhashable dataclass; entries leave when the face closes.
_MEMORIES: dict[int, CliMemory] = {}


def remember_memory(device: Device, memory: CliMemory) -> None:
    _MEMORIES[id(device)] = memory


def forget_memory(device: Device) -> None:
    _MEMORIES.pop(id(device), None)


def memory_of(device: Device) -> CliMemory | None:
    return _MEMORIES.get(id(device))


@dataclass(frozen=True, slots=True)
class CliContext:
    """What a session needs besides the network: the lab's memory and the login's secret."""

    memory: CliMemory
    enable_secret: str | None = field(default=None, repr=False)
    username: str = "admin"


SessionFactory = Callable[[LabNetwork, Device, CliContext], CliSession]

_REGISTRY: dict[str, SessionFactory] = {}
_BY_KIND: dict[DeviceKind, str] = {}


def register_cli(platform: str, factory: SessionFactory, *, kind: DeviceKind | None = None) -> None:
    """Register the CLI of a platform; ``kind`` makes it the fallback for that device kind."""
    _REGISTRY[platform] = factory
    if kind is not None:
        _BY_KIND.setdefault(kind, platform)


def registered_platforms() -> list[str]:
    return sorted(_REGISTRY)


def cli_platform(device: Device) -> str:
    """The registered platform whose CLI this device speaks."""
    if device.platform in _REGISTRY:
        return device.platform
    try:
        return _BY_KIND[device.kind]
    except KeyError:
        raise LookupError(
            f"no lab CLI for platform {device.platform!r} (device {device.name}, kind "
            f"{device.kind.value}); registered: {', '.join(registered_platforms())}"
        ) from None


def session_for(net: LabNetwork, device: Device, context: CliContext) -> CliSession:
    """A new CLI session on ``device``."""
    return _REGISTRY[cli_platform(device)](net, device, context)


def split_words(line: str) -> list[tuple[str, int]]:
    """Whitespace-separated words of ``line`` with the column each starts at."""
    words: list[tuple[str, int]] = []
    start = -1
    for i, ch in enumerate(line):
        if ch.isspace():
            if start >= 0:
                words.append((line[start:i], start))
                start = -1
        elif start < 0:
            start = i
    if start >= 0:
        words.append((line[start:], start))
    return words
