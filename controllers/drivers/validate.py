"""Parameter validation for device commands: the only way a value reaches a command template.

Every value that ends up in a command line is parsed here into a typed value (an
``IPv4Address``, an ``int`` in range) or matched whole against a strict ASCII pattern, so no
newline, ``;``, quote, control character or look-alike Unicode digit can smuggle a second
command onto the line. A value that fails raises ``InvalidParameter`` before any session opens.
Pure functions; no I/O.
"""

from __future__ import annotations

import ipaddress
import re

from controllers.errors import InvalidParameter

MIN_DISTANCE, MAX_DISTANCE = 1, 255
MIN_CALL_RATE_KBPS, MAX_CALL_RATE_KBPS = 64, 6000  # Cisco RoomOS/TC allowed call rates
MAX_CALL_ID = 2**31 - 1

# IOS interface names as the inventory writes them: a known type, then slot/port numbers and an
# optional sub-interface (GigabitEthernet0/0/1, TenGigabitEthernet0/1/0.100, Loopback0).
INTERFACE_TYPES = (
    "GigabitEthernet",
    "TenGigabitEthernet",
    "TwentyFiveGigE",
    "FortyGigabitEthernet",
    "HundredGigE",
    "FastEthernet",
    "Ethernet",
    "Serial",
    "Cellular",
    "Dialer",
    "Tunnel",
    "Vlan",
    "Port-channel",
    "Loopback",
    "BDI",
)
_INTERFACE = re.compile(
    r"(?:" + "|".join(re.escape(t) for t in INTERFACE_TYPES) + r")"
    r"[0-9]{1,4}(?:/[0-9]{1,4}){0,3}(?:\.[0-9]{1,5})?",
    re.ASCII,
)
# A dialled number: an E.164-style number, a SIP/H.323 alias, or user@host; optional scheme.
_DIAL = re.compile(
    r"(?:(?:sip|h323):)?\+?[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62})"
    r"(?:@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)?",
    re.ASCII,
)
# MCU conference names and endpoint names (inventory device names are a subset).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}", re.ASCII)


def _text(device: str, parameter: str, value: object, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(device, parameter, f"expected text, got {type(value).__name__}")
    if not value:
        raise InvalidParameter(device, parameter, "empty")
    if len(value) > max_len:
        raise InvalidParameter(device, parameter, f"longer than {max_len} characters")
    if not value.isascii() or not value.isprintable():
        # Do not echo it: it may hold control characters meant for a terminal.
        raise InvalidParameter(
            device, parameter, "holds non-ASCII or control characters (newline, tab...)"
        )
    return value


def _integer(device: str, parameter: str, value: object, low: int, high: int) -> int:
    # bool is an int in Python: True must not become distance 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(
            device, parameter, f"expected an integer, got {type(value).__name__}"
        )
    if not low <= value <= high:
        raise InvalidParameter(device, parameter, f"{value} is outside {low}..{high}")
    return value


def next_hop(value: object, *, device: str) -> ipaddress.IPv4Address:
    """A unicast IPv4 next hop (dotted quad or ``IPv4Address``)."""
    if isinstance(value, ipaddress.IPv4Address):
        address = value
    else:
        text = _text(device, "next hop", value, 15)
        if not _DOTTED_QUAD.fullmatch(text):
            raise InvalidParameter(
                device, "next hop", f"{text!r} is not a dotted-quad IPv4 address"
            )
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError as err:
            raise InvalidParameter(device, "next hop", str(err)) from None
    if (
        address.is_unspecified
        or address.is_multicast
        or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        raise InvalidParameter(device, "next hop", f"{address} is not a unicast address")
    return address


def distance(value: object, *, device: str) -> int:
    """An administrative distance, 1..255."""
    return _integer(device, "administrative distance", value, MIN_DISTANCE, MAX_DISTANCE)


def interface_name(value: object, *, device: str) -> str:
    """A full IOS interface name (``GigabitEthernet0/0/1``); abbreviations are refused."""
    text = _text(device, "interface name", value, 64)
    if not _INTERFACE.fullmatch(text):
        raise InvalidParameter(
            device,
            "interface name",
            f"{text!r} is not a full interface name such as GigabitEthernet0/0/1",
        )
    return text


def call_rate(value: object, *, device: str) -> int:
    """A call rate in kbit/s."""
    return _integer(device, "call rate (kbit/s)", value, MIN_CALL_RATE_KBPS, MAX_CALL_RATE_KBPS)


def call_id(value: object, *, device: str) -> int:
    """A codec's CallId."""
    return _integer(device, "call id", value, 1, MAX_CALL_ID)


def dial_number(value: object, *, device: str) -> str:
    """A number or URI to dial: ``+861012345678``, ``room-12``, ``sip:conf@mcu.example``."""
    text = _text(device, "number to dial", value, 255)
    if not _DIAL.fullmatch(text):
        raise InvalidParameter(
            device,
            "number to dial",
            "expected a number, alias or user@host (letters, digits, '.', '_', '+', '-')",
        )
    return text


def name(value: object, *, device: str, parameter: str = "name") -> str:
    """A conference or endpoint name: letters, digits, '.', '_', '-' (at most 64)."""
    text = _text(device, parameter, value, 64)
    if not _NAME.fullmatch(text):
        raise InvalidParameter(
            device, parameter, "expected letters, digits, '.', '_' or '-' (at most 64)"
        )
    return text
