"""SNMP messages: v2c (RFC 3416 over RFC 1901) and v3 (RFC 3412 with USM parameters, RFC 3414).

Decoding is strict (``ber.DecodeError`` on anything unexpected, trailing bytes included) and
keeps what the agent needs to answer cheaply: each varbind's OID as a tuple *and* as the exact
TLV bytes the client sent, and, for v3, the offset of msgAuthenticationParameters in the whole
message so the digest can be checked and written without re-encoding.

Encoding builds replies from already-encoded pieces; both the agent and the tests' and bench's
request generators use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.snmp import ber
from lab.snmp.ber import DecodeError, Oid, Value

# PDU tags (context-specific, constructed)
GET = 0xA0
GET_NEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
TRAP_V1 = 0xA4
GET_BULK = 0xA5
INFORM = 0xA6
TRAP_V2 = 0xA7
REPORT = 0xA8
PDU_TAGS = frozenset({GET, GET_NEXT, RESPONSE, SET, TRAP_V1, GET_BULK, INFORM, TRAP_V2, REPORT})

VERSION_1 = 0
VERSION_2C = 1
VERSION_3 = 3

# error-status (RFC 3416)
NO_ERROR = 0
TOO_BIG = 1
GEN_ERR = 5
NO_ACCESS = 6
AUTHORIZATION_ERROR = 16

# msgFlags (RFC 3412)
FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
USM_SECURITY_MODEL = 3

MAX_VARBINDS = 256  # in one request; real agents cap this too
MIN_MSG_MAX_SIZE = 484  # RFC 3412: msgMaxSize (484..2147483647)


@dataclass(slots=True)
class VarBind:
    oid: Oid
    value: Value
    raw_oid: bytes  # the OID TLV exactly as received


@dataclass(slots=True)
class Pdu:
    tag: int
    request_id: int
    error_status: int  # non-repeaters in a GetBulkRequest
    error_index: int  # max-repetitions in a GetBulkRequest
    varbinds: list[VarBind]


@dataclass(slots=True)
class CommunityMessage:
    version: int
    community: bytes
    pdu: Pdu


@dataclass(slots=True)
class ScopedPdu:
    context_engine_id: bytes
    context_name: bytes
    pdu: Pdu


@dataclass(slots=True)
class V3Message:
    msg_id: int
    max_size: int
    flags: int
    security_model: int
    engine_id: bytes
    engine_boots: int
    engine_time: int
    user_name: bytes
    auth_params: bytes
    auth_params_offset: int  # where auth_params sit in the whole message
    priv_params: bytes
    scoped: ScopedPdu | None  # plaintext msgData
    encrypted: bytes | None  # encryptedPDU when the priv flag is set


# ---- decoding -------------------------------------------------------------------------------


def message_version(buf: bytes) -> tuple[int, int, int]:
    """(version, offset after the version field, end of the outer SEQUENCE)."""
    start, stop = ber.expect(buf, 0, len(buf), ber.SEQUENCE)
    if stop != len(buf):
        raise DecodeError("trailing_bytes")
    vs, ve = ber.expect(buf, start, stop, ber.INTEGER)
    return ber.signed(buf, vs, ve), ve, stop


def decode_pdu(buf: bytes, pos: int, end: int) -> tuple[Pdu, int]:
    tag, start, stop = ber.header(buf, pos, end)
    if tag not in PDU_TAGS or tag == TRAP_V1:
        raise DecodeError("unknown_pdu")
    s, e = ber.expect(buf, start, stop, ber.INTEGER)
    request_id = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.INTEGER)
    error_status = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, stop, ber.INTEGER)
    error_index = ber.signed(buf, s, e)
    vs, ve = ber.expect(buf, e, stop, ber.SEQUENCE)
    if ve != stop:
        raise DecodeError("trailing_bytes")
    varbinds: list[VarBind] = []
    pos = vs
    while pos < ve:
        if len(varbinds) >= MAX_VARBINDS:
            raise DecodeError("too_many_varbinds")
        bs, be = ber.expect(buf, pos, ve, ber.SEQUENCE)
        os_, oe = ber.expect(buf, bs, be, ber.OBJECT_IDENTIFIER)
        arcs = ber.oid(buf, os_, oe)
        val, after = ber.value(buf, oe, be)
        if after != be:
            raise DecodeError("trailing_bytes")
        varbinds.append(VarBind(arcs, val, bytes(buf[bs:oe])))
        pos = be
    return Pdu(tag, request_id, error_status, error_index, varbinds), stop


def decode_community(buf: bytes, pos: int, end: int, version: int) -> CommunityMessage:
    """The rest of a v1/v2c message after its version field."""
    cs, ce = ber.expect(buf, pos, end, ber.OCTET_STRING)
    pdu, after = decode_pdu(buf, ce, end)
    if after != end:
        raise DecodeError("trailing_bytes")
    return CommunityMessage(version, bytes(buf[cs:ce]), pdu)


def decode_scoped_pdu(buf: bytes, pos: int, end: int, *, allow_trailing: bool) -> ScopedPdu:
    s, e = ber.expect(buf, pos, end, ber.SEQUENCE)
    if e != end and not allow_trailing:
        raise DecodeError("trailing_bytes")
    es, ee = ber.expect(buf, s, e, ber.OCTET_STRING)
    ns, ne = ber.expect(buf, ee, e, ber.OCTET_STRING)
    pdu, after = decode_pdu(buf, ne, e)
    if after != e:
        raise DecodeError("trailing_bytes")
    return ScopedPdu(bytes(buf[es:ee]), bytes(buf[ns:ne]), pdu)


def decode_v3(buf: bytes, pos: int, end: int) -> V3Message:
    """The rest of a v3 message after its version field (USM security parameters decoded)."""
    gs, ge = ber.expect(buf, pos, end, ber.SEQUENCE)
    s, e = ber.expect(buf, gs, ge, ber.INTEGER)
    msg_id = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, ge, ber.INTEGER)
    max_size = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, ge, ber.OCTET_STRING)
    if e - s != 1:
        raise DecodeError("bad_msg_flags")
    flags = buf[s]
    s, e = ber.expect(buf, e, ge, ber.INTEGER)
    security_model = ber.signed(buf, s, e)
    if e != ge:
        raise DecodeError("trailing_bytes")
    if msg_id < 0 or max_size < MIN_MSG_MAX_SIZE:
        raise DecodeError("bad_header_data")
    ps, pe = ber.expect(buf, ge, end, ber.OCTET_STRING)
    us, ue = ber.expect(buf, ps, pe, ber.SEQUENCE)
    if ue != pe:
        raise DecodeError("trailing_bytes")
    s, e = ber.expect(buf, us, ue, ber.OCTET_STRING)
    engine_id = bytes(buf[s:e])
    if len(engine_id) > 32:
        raise DecodeError("bad_engine_id")
    s, e = ber.expect(buf, e, ue, ber.INTEGER)
    boots = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, ue, ber.INTEGER)
    time = ber.signed(buf, s, e)
    s, e = ber.expect(buf, e, ue, ber.OCTET_STRING)
    user = bytes(buf[s:e])
    if len(user) > 32:
        raise DecodeError("bad_user_name")
    auth_s, auth_e = ber.expect(buf, e, ue, ber.OCTET_STRING)
    s, e = ber.expect(buf, auth_e, ue, ber.OCTET_STRING)
    priv = bytes(buf[s:e])
    if e != ue:
        raise DecodeError("trailing_bytes")
    tag, ds, de = ber.header(buf, pe, end)
    if de != end:
        raise DecodeError("trailing_bytes")
    scoped: ScopedPdu | None = None
    encrypted: bytes | None = None
    if tag == ber.OCTET_STRING:
        encrypted = bytes(buf[ds:de])
    elif tag == ber.SEQUENCE:
        scoped = decode_scoped_pdu(buf, pe, end, allow_trailing=False)
    else:
        raise DecodeError("unexpected_tag")
    return V3Message(
        msg_id=msg_id,
        max_size=max_size,
        flags=flags,
        security_model=security_model,
        engine_id=engine_id,
        engine_boots=boots,
        engine_time=time,
        user_name=user,
        auth_params=bytes(buf[auth_s:auth_e]),
        auth_params_offset=auth_s,
        priv_params=priv,
        scoped=scoped,
        encrypted=encrypted,
    )


# ---- encoding -------------------------------------------------------------------------------


def varbind(oid_tlv: bytes, value_tlv: bytes) -> bytes:
    return ber.tlv(ber.SEQUENCE, oid_tlv + value_tlv)


def encode_pdu(
    tag: int, request_id: int, error_status: int, error_index: int, varbinds: bytes
) -> bytes:
    """A PDU around already-encoded, concatenated varbinds."""
    return ber.tlv(
        tag,
        ber.integer(request_id)
        + ber.integer(error_status)
        + ber.integer(error_index)
        + ber.tlv(ber.SEQUENCE, varbinds),
    )


def encode_community(version: int, community: bytes, pdu: bytes) -> bytes:
    return ber.tlv(ber.SEQUENCE, ber.integer(version) + ber.tlv(ber.OCTET_STRING, community) + pdu)


def encode_scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    return ber.tlv(
        ber.SEQUENCE,
        ber.tlv(ber.OCTET_STRING, context_engine_id)
        + ber.tlv(ber.OCTET_STRING, context_name)
        + pdu,
    )


def encode_v3(
    *,
    msg_id: int,
    max_size: int,
    flags: int,
    engine_id: bytes,
    engine_boots: int,
    engine_time: int,
    user_name: bytes,
    auth_len: int,
    priv_params: bytes,
    msg_data: bytes,
) -> tuple[bytes, int]:
    """A v3 message with ``auth_len`` zero bytes as msgAuthenticationParameters.

    Returns the message and the offset of those bytes, where the caller writes the digest.
    ``msg_data`` is an encoded ScopedPDU or the encryptedPDU OCTET STRING TLV.
    """
    header_data = ber.tlv(
        ber.SEQUENCE,
        ber.integer(msg_id)
        + ber.integer(max_size)
        + ber.tlv(ber.OCTET_STRING, bytes((flags,)))
        + ber.integer(USM_SECURITY_MODEL),
    )
    before_auth = (
        ber.tlv(ber.OCTET_STRING, engine_id)
        + ber.integer(engine_boots)
        + ber.integer(engine_time)
        + ber.tlv(ber.OCTET_STRING, user_name)
        + bytes((ber.OCTET_STRING,))
        + ber.length(auth_len)
    )
    usm = before_auth + bytes(auth_len) + ber.tlv(ber.OCTET_STRING, priv_params)
    usm_seq = bytes((ber.SEQUENCE,)) + ber.length(len(usm))
    usm_octets = bytes((ber.OCTET_STRING,)) + ber.length(len(usm_seq) + len(usm))
    version = ber.integer(VERSION_3)
    body_len = (
        len(version) + len(header_data) + len(usm_octets) + len(usm_seq) + len(usm) + len(msg_data)
    )
    outer = bytes((ber.SEQUENCE,)) + ber.length(body_len)
    offset = (
        len(outer)
        + len(version)
        + len(header_data)
        + len(usm_octets)
        + len(usm_seq)
        + len(before_auth)
    )
    message = b"".join((outer, version, header_data, usm_octets, usm_seq, usm, msg_data))
    return message, offset
