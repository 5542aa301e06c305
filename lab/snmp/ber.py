"""BER primitives for SNMP: the few universal and application types SNMP uses, nothing more.

Strict and bounded by design: single-byte tags only, definite lengths of at most three length
octets, minimal OID sub-identifiers, integers no wider than their SNMP type allows. Anything else
raises ``DecodeError`` — the agent drops such a packet and counts it; it never crashes.

Decoding works on offsets into the original ``bytes`` (no copies until a value is taken), so
a request's community, request-id and OIDs can be echoed into the response as the exact bytes the
client sent.
"""

from __future__ import annotations

from typing import NamedTuple

# Universal
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
# Application (SNMPv2-SMI)
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
# Context-specific exceptions in a varbind (RFC 3416)
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

MAX_OID_ARCS = 128
MAX_SUBID = 2**32 - 1
_MAX_FIRST_SUBID = MAX_SUBID + 80  # the first sub-identifier packs two arcs
MAX_LENGTH_OCTETS = 3  # 16 MiB, far above any UDP datagram

Oid = tuple[int, ...]


class DecodeError(ValueError):
    """The bytes are not the BER this codec accepts; ``reason`` is a short counter label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Value(NamedTuple):
    """A decoded varbind value: its BER tag and the Python value (int, bytes, OID or None)."""

    tag: int
    value: int | bytes | Oid | None


# ---- decoding -------------------------------------------------------------------------------


def header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV at ``pos``: (tag, content start, content end). Raises DecodeError if invalid."""
    if pos + 2 > end:
        raise DecodeError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DecodeError("bad_tag")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > MAX_LENGTH_OCTETS:
            raise DecodeError("bad_length")
        if pos + n > end:
            raise DecodeError("truncated")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    stop = pos + length
    if stop > end:
        raise DecodeError("truncated")
    return tag, pos, stop


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Like ``header`` but the tag must be ``tag``; returns (content start, content end)."""
    got, start, stop = header(buf, pos, end)
    if got != tag:
        raise DecodeError("unexpected_tag")
    return start, stop


def signed(buf: bytes, start: int, stop: int, max_octets: int = 4) -> int:
    """An INTEGER's content as a signed int of at most ``max_octets`` octets."""
    n = stop - start
    if n == 0 or n > max_octets:
        raise DecodeError("bad_integer")
    return int.from_bytes(buf[start:stop], "big", signed=True)


def unsigned(buf: bytes, start: int, stop: int, bits: int) -> int:
    """An unsigned application integer (Counter32, Gauge32, TimeTicks, Counter64)."""
    n = stop - start
    if n == 0 or n > bits // 8 + 1:
        raise DecodeError("bad_integer")
    value = int.from_bytes(buf[start:stop], "big", signed=True)
    if value < 0 or value >= 1 << bits:
        raise DecodeError("bad_integer")
    return value


def oid(buf: bytes, start: int, stop: int) -> Oid:
    """An OBJECT IDENTIFIER's content as a tuple of arcs (minimal encoding required)."""
    if start >= stop or stop - start > MAX_OID_ARCS * 5:
        raise DecodeError("bad_oid")
    arcs: list[int] = []
    value = 0
    fresh = True
    for i in range(start, stop):
        byte = buf[i]
        if fresh and byte == 0x80:
            raise DecodeError("bad_oid")  # non-minimal sub-identifier
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            if value > _MAX_FIRST_SUBID:
                raise DecodeError("bad_oid")
            fresh = False
            continue
        if value > MAX_SUBID and arcs:
            raise DecodeError("bad_oid")
        if not arcs:
            if value < 40:
                arcs += (0, value)
            elif value < 80:
                arcs += (1, value - 40)
            else:
                if value - 80 > MAX_SUBID:
                    raise DecodeError("bad_oid")
                arcs += (2, value - 80)
        else:
            arcs.append(value)
        value = 0
        fresh = True
    if not fresh:
        raise DecodeError("bad_oid")  # last octet had the continuation bit
    if len(arcs) > MAX_OID_ARCS:
        raise DecodeError("bad_oid")
    return tuple(arcs)


def value(buf: bytes, pos: int, end: int) -> tuple[Value, int]:
    """The varbind value at ``pos`` and the offset after it."""
    tag, start, stop = header(buf, pos, end)
    decoded: int | bytes | Oid | None
    if tag == INTEGER:
        decoded = signed(buf, start, stop)
    elif tag in (OCTET_STRING, OPAQUE):
        decoded = bytes(buf[start:stop])
    elif tag == OBJECT_IDENTIFIER:
        decoded = oid(buf, start, stop)
    elif tag == IP_ADDRESS:
        if stop - start != 4:
            raise DecodeError("bad_ipaddress")
        decoded = bytes(buf[start:stop])
    elif tag in (COUNTER32, GAUGE32, TIMETICKS):
        decoded = unsigned(buf, start, stop, 32)
    elif tag == COUNTER64:
        decoded = unsigned(buf, start, stop, 64)
    elif tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        if stop != start:
            raise DecodeError("bad_null")
        decoded = None
    else:
        raise DecodeError("bad_value_tag")
    return Value(tag, decoded), stop


# ---- encoding -------------------------------------------------------------------------------

_SHORT_LENGTHS = [bytes([n]) for n in range(0x80)]


def length(n: int) -> bytes:
    if n < 0x80:
        return _SHORT_LENGTHS[n]
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    if n < 0x1000000:
        return bytes((0x83, n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    raise ValueError(f"BER length {n} exceeds this codec's bound")


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + length(n) + content


def _int_content(v: int) -> bytes:
    if v >= 0:
        return v.to_bytes(v.bit_length() // 8 + 1, "big")
    return v.to_bytes((~v).bit_length() // 8 + 1, "big", signed=True)


_SMALL_INTS = [bytes((INTEGER, 1, v)) for v in range(128)]


def integer(v: int) -> bytes:
    """INTEGER (Integer32 and enumerations)."""
    if 0 <= v < 128:
        return _SMALL_INTS[v]
    return tlv(INTEGER, _int_content(v))


def octets(v: bytes | str) -> bytes:
    """OCTET STRING; ``str`` is encoded as UTF-8 (DisplayString is ASCII; names may not be)."""
    if isinstance(v, str):
        v = v.encode("utf-8")
    return tlv(OCTET_STRING, v)


def _app_unsigned(tag: int, v: int, bits: int) -> bytes:
    if v < 0 or v >= 1 << bits:
        raise ValueError(f"{v} does not fit an unsigned {bits}-bit SNMP type")
    return tlv(tag, _int_content(v))


def counter32(v: int) -> bytes:
    return _app_unsigned(COUNTER32, v, 32)


def gauge32(v: int) -> bytes:
    """Gauge32 / Unsigned32 (same BER tag); clamps to the type's range as a gauge does."""
    return _app_unsigned(GAUGE32, min(max(v, 0), MAX_SUBID), 32)


def timeticks(v: int) -> bytes:
    return _app_unsigned(TIMETICKS, v, 32)


def counter64(v: int) -> bytes:
    return _app_unsigned(COUNTER64, v, 64)


def ip_address(v: str) -> bytes:
    parts = bytes(int(p) for p in v.split("."))
    if len(parts) != 4:
        raise ValueError(f"{v!r} is not a dotted IPv4 address")
    return tlv(IP_ADDRESS, parts)


NULL_TLV = bytes((NULL, 0))
NO_SUCH_OBJECT_TLV = bytes((NO_SUCH_OBJECT, 0))
NO_SUCH_INSTANCE_TLV = bytes((NO_SUCH_INSTANCE, 0))
END_OF_MIB_VIEW_TLV = bytes((END_OF_MIB_VIEW, 0))


def oid_content(arcs: Oid) -> bytes:
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"{arcs!r} is not an encodable OBJECT IDENTIFIER")
    out = bytearray()
    for i, arc in enumerate((arcs[0] * 40 + arcs[1], *arcs[2:])):
        if arc < 0 or (i and arc > MAX_SUBID):
            raise ValueError(f"arc {arc} out of range in {arcs!r}")
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


_OID_TLV_CACHE: dict[Oid, bytes] = {}
_OID_TLV_CACHE_MAX = 200_000


def oid_tlv(arcs: Oid) -> bytes:
    """OBJECT IDENTIFIER TLV, memoised: agents answer the same few thousand OIDs all day."""
    cached = _OID_TLV_CACHE.get(arcs)
    if cached is not None:
        return cached
    encoded = tlv(OBJECT_IDENTIFIER, oid_content(arcs))
    if len(_OID_TLV_CACHE) >= _OID_TLV_CACHE_MAX:
        _OID_TLV_CACHE.clear()
    _OID_TLV_CACHE[arcs] = encoded
    return encoded


def parse_oid(text: str) -> Oid:
    """'1.3.6.1.2.1.1.3.0' (a leading dot allowed) as a tuple."""
    return tuple(int(p) for p in text.strip().lstrip(".").split("."))


def format_oid(arcs: Oid) -> str:
    return ".".join(str(a) for a in arcs)
