"""A strict, bounded BER codec for the client side of SNMPv2c: GET/GETBULK out, Response in.

This is the lean path under :mod:`monitors.snmp.fastpath`. It encodes GetRequest and
GetBulkRequest messages from precomputed templates (only the request-id changes between two
polls of the same device) and decodes Response messages straight into the contract's
:class:`~monitors.snmp.base.VarBind`. pysnmp stays the reference: for every message this codec
accepts, the result is exactly what pysnmp's own decoder gives (``tests/monitors/
test_fastpath_differential.py`` holds it to that); for everything else it raises
:class:`NotUnderstood` and the transport hands the request to pysnmp. It never guesses.

What it accepts — and nothing more:

- single-octet tags; definite lengths, short form or long form of 1 to 3 length octets (net-snmp
  writes ``82 00 2b`` for short sequences, which is valid BER);
- a message ``SEQUENCE { INTEGER 1 (v2c), OCTET STRING community, Response-PDU }`` with no
  trailing octets anywhere (pysnmp ignores octets after the message; this codec refuses them);
- request-id and error-index as INTEGERs of at most 4 content octets in their SNMP ranges
  (error-index no larger than the number of varbinds), error-status 0..18;
- varbind values: INTEGER (Integer32), OCTET STRING, OBJECT IDENTIFIER, IpAddress (exactly
  4 octets), Counter32, Gauge32/Unsigned32, TimeTicks, Opaque, Counter64, NULL and the three
  exceptions noSuchObject / noSuchInstance / endOfMibView, primitive encodings only;
- integers of at most their type's width plus one octet (a redundant sign octet is accepted),
  values in their type's range; OIDs with minimal sub-identifiers no larger than 2**32 - 1 and
  at most 128 arcs.

Constructed strings, indefinite lengths, high tag numbers, empty INTEGERs (pyasn1 reads them as
0), other PDU types and other versions are all "not understood".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from monitors.snmp.base import Oid, ValueKind, VarBind

# ---- tags ------------------------------------------------------------------------------------

INTEGER: Final = 0x02
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OBJECT_IDENTIFIER: Final = 0x06
SEQUENCE: Final = 0x30
IP_ADDRESS: Final = 0x40
COUNTER32: Final = 0x41
GAUGE32: Final = 0x42  # Unsigned32 shares the tag
TIMETICKS: Final = 0x43
OPAQUE: Final = 0x44
COUNTER64: Final = 0x46
NO_SUCH_OBJECT: Final = 0x80
NO_SUCH_INSTANCE: Final = 0x81
END_OF_MIB_VIEW: Final = 0x82

GET_REQUEST: Final = 0xA0
RESPONSE: Final = 0xA2
GET_BULK_REQUEST: Final = 0xA5

VERSION_2C: Final = 1

# ---- bounds ----------------------------------------------------------------------------------

MAX_OID_ARCS: Final = 128
MAX_SUBID: Final = 2**32 - 1
MAX_LENGTH_OCTETS: Final = 3
MAX_DATAGRAM: Final = 65_507  # the largest UDP/IPv4 payload
MAX_ERROR_STATUS: Final = 18  # inconsistentName, RFC 3416
MAX_INT32: Final = 2**31 - 1
# Request-ids are drawn from this range so they always take exactly 4 minimal content octets:
# a template's request-id slot then has a fixed width and only its bytes change.
REQUEST_ID_MIN: Final = 0x0080_0000
REQUEST_ID_MAX: Final = MAX_INT32

ERROR_STATUS_NAMES: Final = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)


class NotUnderstood(ValueError):
    """The octets are not a message this codec accepts; ``reason`` is a short counter label.

    Not an error of the device by itself: the transport hands the request to pysnmp, which
    decides what the octets mean (an answer, a malformed response, or nothing).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded SNMPv2c Response message."""

    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


@dataclass(frozen=True, slots=True)
class Header:
    """The leading fields of a message, read even when the rest cannot be decoded."""

    version: int
    community: bytes
    pdu_tag: int
    request_id: int


# ---- decoding --------------------------------------------------------------------------------

_KIND_BY_TAG: Final = {
    INTEGER: ValueKind.INTEGER,
    OCTET_STRING: ValueKind.OCTETS,
    OBJECT_IDENTIFIER: ValueKind.OID,
    IP_ADDRESS: ValueKind.IPADDRESS,
    COUNTER32: ValueKind.COUNTER32,
    GAUGE32: ValueKind.GAUGE32,
    TIMETICKS: ValueKind.TIMETICKS,
    OPAQUE: ValueKind.OPAQUE,
    COUNTER64: ValueKind.COUNTER64,
    NULL: ValueKind.NULL,
    NO_SUCH_OBJECT: ValueKind.NO_SUCH_OBJECT,
    NO_SUCH_INSTANCE: ValueKind.NO_SUCH_INSTANCE,
    END_OF_MIB_VIEW: ValueKind.END_OF_MIB_VIEW,
}
_UNSIGNED32: Final = frozenset({COUNTER32, GAUGE32, TIMETICKS})
_EMPTY: Final = frozenset({NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW})
_BYTES: Final = frozenset({OCTET_STRING, OPAQUE})
# The first sub-identifier of an OID packs two arcs (X * 40 + Y).
_FIRST_ARCS: Final = tuple((0, v) if v < 40 else (1, v - 40) if v < 80 else (2, v - 80)
                           for v in range(128))  # fmt: skip


def _long_length(buf: bytes, pos: int, end: int, first: int) -> tuple[int, int]:
    """A long-form length whose first octet ``first`` was at ``pos - 1``: (length, new pos)."""
    n = first & 0x7F
    if n == 0 or n > MAX_LENGTH_OCTETS:
        raise NotUnderstood("bad_length")  # 0x80 is the indefinite form
    if pos + n > end:
        raise NotUnderstood("truncated")
    return int.from_bytes(buf[pos : pos + n], "big"), pos + n


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV at ``pos`` within ``end``: (tag, content start, content end)."""
    if pos + 2 > end:
        raise NotUnderstood("truncated")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        length, pos = _long_length(buf, pos, end, length)
    stop = pos + length
    if stop > end:
        raise NotUnderstood("truncated")
    return tag, pos, stop


def _expect(buf: bytes, pos: int, end: int, want: int, reason: str) -> tuple[int, int]:
    tag, start, stop = read_tlv(buf, pos, end)
    if tag != want:
        raise NotUnderstood(reason)
    return start, stop


def _int32(buf: bytes, start: int, stop: int, reason: str) -> int:
    """An Integer32; 5 octets are allowed for a redundant sign octet (pyasn1 writes -2**31
    as ``ff 80 00 00 00``)."""
    if not 0 < stop - start <= 5:
        raise NotUnderstood(reason)
    value = int.from_bytes(buf[start:stop], "big", signed=True)
    if not -(2**31) <= value <= MAX_INT32:
        raise NotUnderstood(reason)
    return value


def decode_oid(buf: bytes, start: int, stop: int) -> Oid:
    """An OBJECT IDENTIFIER's content octets as a tuple of arcs."""
    n = stop - start
    if n <= 0 or n > MAX_OID_ARCS * 5:
        raise NotUnderstood("bad_oid")
    raw = buf[start:stop]
    if max(raw) < 0x80:  # every sub-identifier fits one octet: the common case
        if n >= MAX_OID_ARCS:
            raise NotUnderstood("bad_oid")
        return _FIRST_ARCS[raw[0]] + tuple(raw[1:])
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in raw:
        if fresh and byte == 0x80:
            raise NotUnderstood("bad_oid")  # a non-minimal sub-identifier
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            if value > MAX_SUBID + 80:
                raise NotUnderstood("bad_oid")
            fresh = False
            continue
        if arcs:
            if value > MAX_SUBID:
                raise NotUnderstood("bad_oid")
            arcs.append(value)
        elif value < 80:
            arcs += _FIRST_ARCS[value]
        else:
            if value - 80 > MAX_SUBID:
                raise NotUnderstood("bad_oid")
            arcs += (2, value - 80)
        value = 0
        fresh = True
    if not fresh:
        raise NotUnderstood("bad_oid")  # the last octet still had the continuation bit
    if len(arcs) > MAX_OID_ARCS:
        raise NotUnderstood("bad_oid")
    return tuple(arcs)


def _value(tag: int, buf: bytes, start: int, stop: int) -> int | bytes | Oid | str | None:
    """A varbind value's content (the tag is known to be one of ``_KIND_BY_TAG``)."""
    n = stop - start
    if tag == INTEGER:
        return _int32(buf, start, stop, "bad_integer")
    if tag in _BYTES:
        return buf[start:stop]
    if tag in _UNSIGNED32:
        if not 0 < n <= 5:
            raise NotUnderstood("bad_unsigned")
        u = int.from_bytes(buf[start:stop], "big", signed=True)
        if not 0 <= u <= MAX_SUBID:
            raise NotUnderstood("bad_unsigned")
        return u
    if tag in _EMPTY:
        if n:
            raise NotUnderstood("bad_null")
        return None
    if tag == OBJECT_IDENTIFIER:
        return decode_oid(buf, start, stop)
    if tag == COUNTER64:
        if not 0 < n <= 9:
            raise NotUnderstood("bad_counter64")
        u = int.from_bytes(buf[start:stop], "big", signed=True)
        if not 0 <= u < 1 << 64:
            raise NotUnderstood("bad_counter64")
        return u
    # IP_ADDRESS
    if n != 4:
        raise NotUnderstood("bad_ipaddress")
    return ".".join(map(str, buf[start:stop]))


def decode_varbinds(buf: bytes, pos: int, end: int) -> list[VarBind]:
    """The content of a VarBindList (``pos``..``end``) as contract ``VarBind``s."""
    out: list[VarBind] = []
    append = out.append
    kinds = _KIND_BY_TAG
    first_arcs = _FIRST_ARCS
    unsigned32 = _UNSIGNED32
    from_bytes = int.from_bytes
    while pos < end:
        # VarBind ::= SEQUENCE { name OBJECT IDENTIFIER, value }; short forms inline.
        if pos + 2 > end or buf[pos] != SEQUENCE:
            raise NotUnderstood("truncated" if pos + 2 > end else "unexpected_tag")
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            length, pos = _long_length(buf, pos, end, length)
        vb_end = pos + length
        if vb_end > end:
            raise NotUnderstood("truncated")
        # name
        if pos + 2 > vb_end or buf[pos] != OBJECT_IDENTIFIER:
            raise NotUnderstood("truncated" if pos + 2 > vb_end else "unexpected_tag")
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            length, pos = _long_length(buf, pos, vb_end, length)
        oid_end = pos + length
        if oid_end > vb_end:
            raise NotUnderstood("truncated")
        raw = buf[pos:oid_end]
        if 0 < length < MAX_OID_ARCS and max(raw) < 0x80:
            oid = first_arcs[raw[0]] + tuple(raw[1:])
        else:
            oid = decode_oid(buf, pos, oid_end)
        # value
        pos = oid_end
        if pos + 2 > vb_end:
            raise NotUnderstood("truncated")
        tag = buf[pos]
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            length, pos = _long_length(buf, pos, vb_end, length)
        stop = pos + length
        if stop != vb_end:
            raise NotUnderstood("truncated" if stop > vb_end else "trailing_octets")
        kind = kinds.get(tag)
        if kind is None:
            raise NotUnderstood("unexpected_value_tag")
        # The common unsigned counters/gauges inline; the rest through _value.
        if tag in unsigned32 and 0 < length <= 5:
            u = from_bytes(buf[pos:stop], "big", signed=True)
            if not 0 <= u <= MAX_SUBID:
                raise NotUnderstood("bad_unsigned")
            append(VarBind(oid, kind, u))
        else:
            append(VarBind(oid, kind, _value(tag, buf, pos, stop)))
        pos = vb_end
    return out


def _message_start(buf: bytes, *, strict: bool) -> tuple[int, int, int, bytes]:
    """(version, offset of the PDU, end of the message, community) of a community message."""
    end = len(buf)
    if end < 2 or buf[0] != SEQUENCE:
        raise NotUnderstood("not_a_message")
    _, start, stop = read_tlv(buf, 0, end) if strict else _tlv_lenient(buf, 0, end)
    if strict and stop != end:
        raise NotUnderstood("trailing_octets")
    vs, ve = _expect(buf, start, stop, INTEGER, "unexpected_tag")
    version = _int32(buf, vs, ve, "bad_version")
    cs, ce = _expect(buf, ve, stop, OCTET_STRING, "unexpected_tag")
    return version, ce, stop, buf[cs:ce]


def _tlv_lenient(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Like ``read_tlv`` but a content longer than the octets left is cut at ``end`` (peeking)."""
    if pos + 2 > end:
        raise NotUnderstood("truncated")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        length, pos = _long_length(buf, pos, end, length)
    return tag, pos, min(pos + length, end)


def decode_response(buf: bytes) -> Response:
    """A whole datagram as an SNMPv2c Response; :class:`NotUnderstood` for anything else."""
    if len(buf) > MAX_DATAGRAM:
        raise NotUnderstood("oversized")
    version, pos, end, community = _message_start(buf, strict=True)
    if version != VERSION_2C:
        raise NotUnderstood("version")
    tag, start, stop = read_tlv(buf, pos, end)
    if tag != RESPONSE:
        raise NotUnderstood("pdu_type")
    if stop != end:
        raise NotUnderstood("trailing_octets")
    s, e = _expect(buf, start, stop, INTEGER, "unexpected_tag")
    request_id = _int32(buf, s, e, "bad_request_id")
    s, e = _expect(buf, e, stop, INTEGER, "unexpected_tag")
    error_status = _int32(buf, s, e, "bad_error_status")
    if not 0 <= error_status <= MAX_ERROR_STATUS:
        raise NotUnderstood("bad_error_status")
    s, e = _expect(buf, e, stop, INTEGER, "unexpected_tag")
    error_index = _int32(buf, s, e, "bad_error_index")
    if error_index < 0:
        raise NotUnderstood("bad_error_index")
    s, e = _expect(buf, e, stop, SEQUENCE, "unexpected_tag")
    if e != stop:
        raise NotUnderstood("trailing_octets")
    varbinds = decode_varbinds(buf, s, e)
    if error_index > len(varbinds):
        # pysnmp clamps such an index to the varbind count; pointing past the list is an
        # inconsistent answer, so pysnmp decides what it means.
        raise NotUnderstood("bad_error_index")
    return Response(community, request_id, error_status, error_index, varbinds)


def peek_header(buf: bytes) -> Header | None:
    """Version, community, PDU tag and request-id of a datagram the full decode refused.

    Tolerates a message cut short after the request-id (a truncated datagram) so the transport
    can still tell whose answer it was; ``None`` when even that much cannot be read.
    """
    try:
        version, pos, end, community = _message_start(buf[:MAX_DATAGRAM], strict=False)
        tag, start, stop = _tlv_lenient(buf, pos, end)
        s, e = _expect(buf, start, stop, INTEGER, "unexpected_tag")
        return Header(version, community, tag, _int32(buf, s, e, "bad_request_id"))
    except NotUnderstood:
        return None


# ---- encoding --------------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise ValueError(f"BER length {n} is larger than a UDP datagram")


def encode_tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(content)) + content


def encode_integer(v: int) -> bytes:
    """INTEGER with minimal two's-complement content."""
    return encode_tlv(INTEGER, v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(arcs: Sequence[int]) -> bytes:
    """OBJECT IDENTIFIER TLV; ValueError for what BER cannot carry (one arc, X > 2, ...)."""
    return encode_tlv(OBJECT_IDENTIFIER, encode_oid_content(arcs))


def encode_oid_content(arcs: Sequence[int]) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (minimal sub-identifiers)."""
    if len(arcs) < 2 or len(arcs) > MAX_OID_ARCS:
        raise ValueError(f"an OID needs 2 to {MAX_OID_ARCS} arcs, not {len(arcs)}")
    if not 0 <= arcs[0] <= 2 or arcs[1] < 0 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"{tuple(arcs)!r} is not an encodable OBJECT IDENTIFIER")
    out = bytearray()
    for i, arc in enumerate((arcs[0] * 40 + arcs[1], *arcs[2:])):
        if arc < 0 or arc > MAX_SUBID + (80 if i == 0 else 0):
            raise ValueError(f"arc {arc} out of range in {tuple(arcs)!r}")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


_NULL_TLV: Final = bytes((NULL, 0))


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """A whole request message with a 4-octet hole for the request-id.

    ``render(request_id)`` is one concatenation; everything else was encoded once.
    """

    head: bytes
    tail: bytes

    def render(self, request_id: int) -> bytes:
        return self.head + request_id.to_bytes(4, "big") + self.tail


def request_template(
    community: bytes,
    pdu_tag: int,
    oids: Sequence[Oid],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> RequestTemplate:
    """A GetRequest (``GET_REQUEST``) or GetBulkRequest (``GET_BULK_REQUEST``) template.

    For a GetRequest, ``non_repeaters``/``max_repetitions`` are error-status/error-index and
    must be 0. ValueError when the request cannot be encoded or would not fit a datagram.
    """
    if pdu_tag not in (GET_REQUEST, GET_BULK_REQUEST):
        raise ValueError(f"PDU tag {pdu_tag:#x} is not a GetRequest or GetBulkRequest")
    if pdu_tag == GET_REQUEST and (non_repeaters or max_repetitions):
        raise ValueError("a GetRequest carries error-status 0 and error-index 0")
    if not (0 <= non_repeaters <= MAX_INT32 and 0 <= max_repetitions <= MAX_INT32):
        raise ValueError("non-repeaters and max-repetitions must be in 0..2**31-1")
    varbinds = b"".join(encode_tlv(SEQUENCE, encode_oid(o) + _NULL_TLV) for o in oids)
    after_id = (
        encode_integer(non_repeaters)
        + encode_integer(max_repetitions)
        + encode_tlv(SEQUENCE, varbinds)
    )
    pdu_len = 6 + len(after_id)  # 02 04 <request-id> + the rest
    pdu_head = bytes((pdu_tag,)) + encode_length(pdu_len) + bytes((INTEGER, 4))
    msg_head = encode_integer(VERSION_2C) + encode_tlv(OCTET_STRING, community) + pdu_head
    msg_len = len(msg_head) + 4 + len(after_id)
    head = bytes((SEQUENCE,)) + encode_length(msg_len) + msg_head
    if len(head) + 4 + len(after_id) > MAX_DATAGRAM:
        raise ValueError("the request does not fit one UDP datagram")
    return RequestTemplate(head, after_id)
