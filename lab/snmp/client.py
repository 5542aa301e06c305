"""A small blocking SNMP client on the lab's own codec: v2c and v3 USM (auth/priv).

Used to pre-compute the load generator's requests, by tests that need to look at exact PDUs
(reports, error-status, truncated GETBULKs) and by anything in the lab that wants to check an
agent answers. Tiandi's poller uses pysnmp; this is not a replacement for it.

A v3 client discovers the engine (ID, boots, time) on first use, keeps the time moving with the
local clock, and re-synchronises once when the agent reports notInTimeWindow.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from inventory.enums import SnmpVersion
from lab.snmp import ber, codec, oids, usm
from lab.snmp.ber import Oid, Value
from lab.snmp.codec import Pdu

DEFAULT_MAX_SIZE = 65_507


class SnmpTimeout(TimeoutError):
    """No answer from the agent within the timeout (wrong community, device down...)."""


@dataclass(slots=True)
class Reply:
    """What came back: a Response or a Report PDU, decoded."""

    pdu: Pdu

    @property
    def is_report(self) -> bool:
        return self.pdu.tag == codec.REPORT

    @property
    def error_status(self) -> int:
        return self.pdu.error_status

    @property
    def varbinds(self) -> list[tuple[Oid, Value]]:
        return [(vb.oid, vb.value) for vb in self.pdu.varbinds]

    def value(self, oid: Oid) -> Value:
        for vb in self.pdu.varbinds:
            if vb.oid == oid:
                return vb.value
        raise KeyError(ber.format_oid(oid))


def encode_get(tag: int, request_id: int, arcs: Sequence[Oid], a: int = 0, b: int = 0) -> bytes:
    """A request PDU (``a``/``b`` are non-repeaters/max-repetitions for GETBULK)."""
    varbinds = b"".join(codec.varbind(ber.oid_tlv(o), ber.NULL_TLV) for o in arcs)
    return codec.encode_pdu(tag, request_id, a, b, varbinds)


def v2c_message(community: str, pdu: bytes) -> bytes:
    return codec.encode_community(codec.VERSION_2C, community.encode(), pdu)


def v3_discovery(msg_id: int) -> bytes:
    """The unauthenticated probe USM clients send to learn an engine's ID, boots and time."""
    scoped = codec.encode_scoped_pdu(b"", b"", encode_get(codec.GET, msg_id, ()))
    message, _ = codec.encode_v3(
        msg_id=msg_id,
        max_size=DEFAULT_MAX_SIZE,
        flags=codec.FLAG_REPORTABLE,
        engine_id=b"",
        engine_boots=0,
        engine_time=0,
        user_name=b"",
        auth_len=0,
        priv_params=b"",
        msg_data=scoped,
    )
    return message


def v3_message(
    keys: usm.UsmKeys,
    *,
    engine_id: bytes,
    boots: int,
    engine_time: int,
    msg_id: int,
    salt: bytes,
    pdu: bytes,
    flags: int = codec.FLAG_AUTH | codec.FLAG_PRIV,
    context_name: bytes = b"",
    max_size: int = DEFAULT_MAX_SIZE,
) -> bytes:
    """A v3 request at the level ``flags`` asks for (authPriv by default)."""
    scoped = codec.encode_scoped_pdu(engine_id, context_name, pdu)
    priv_params = b""
    if flags & codec.FLAG_PRIV:
        priv_params = salt
        scoped = ber.tlv(ber.OCTET_STRING, usm.encrypt(keys, boots, engine_time, salt, scoped))
    auth = keys.auth if flags & codec.FLAG_AUTH else None
    message, offset = codec.encode_v3(
        msg_id=msg_id,
        max_size=max_size,
        flags=flags | codec.FLAG_REPORTABLE,
        engine_id=engine_id,
        engine_boots=boots,
        engine_time=engine_time,
        user_name=keys.user_name,
        auth_len=auth.mac_len if auth is not None else 0,
        priv_params=priv_params,
        msg_data=scoped,
    )
    return usm.sign(keys, message, offset) if auth is not None else message


EngineInfo = tuple[bytes, int, int]  # (engine ID, boots, time) from a v3 reply's USM header


def decode_reply(data: bytes, keys: usm.UsmKeys | None) -> tuple[int, Pdu, EngineInfo | None]:
    """(msgID or request-id, PDU, engine info) of an agent's datagram, decrypted if needed."""
    version, pos, end = codec.message_version(data)
    if version == codec.VERSION_2C:
        pdu = codec.decode_community(data, pos, end, version).pdu
        return pdu.request_id, pdu, None
    msg = codec.decode_v3(data, pos, end)
    engine = (msg.engine_id, msg.engine_boots, msg.engine_time)
    if msg.scoped is not None:
        return msg.msg_id, msg.scoped.pdu, engine
    if keys is None or msg.encrypted is None:
        raise ber.DecodeError("encrypted_reply_without_keys")
    if msg.flags & codec.FLAG_AUTH and not usm.verify(
        keys, data, msg.auth_params_offset, msg.auth_params
    ):
        raise ber.DecodeError("reply_digest_mismatch")
    plain = usm.decrypt(keys, msg.engine_boots, msg.engine_time, msg.priv_params, msg.encrypted)
    scoped = codec.decode_scoped_pdu(plain, 0, len(plain), allow_trailing=True)
    return msg.msg_id, scoped.pdu, engine


class SnmpClient:
    """One agent, one UDP socket; blocking calls with a timeout and no retries."""

    def __init__(
        self,
        address: str,
        port: int,
        creds: usm.SnmpCredentialLike,
        *,
        timeout: float = 2.0,
        flags: int | None = None,
    ) -> None:
        self.peer = (address, port)
        self.creds = creds
        self.timeout = timeout
        self.flags = flags  # v3 level override (tests); default: what the credentials allow
        self._ids = itertools.count(1000)
        self._salt = usm.SaltCounter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.engine_id = b""
        self.boots = 0
        self._time_base = 0.0  # engine time = this + local monotonic seconds
        self.keys: usm.UsmKeys | None = None
        self.last_engine: EngineInfo | None = None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SnmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- exchange ---------------------------------------------------------------------------

    def _exchange(self, message: bytes, wanted_id: int) -> Pdu:
        self._sock.sendto(message, self.peer)
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SnmpTimeout(f"no SNMP answer from {self.peer[0]}:{self.peer[1]}")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65_535)
            except TimeoutError:
                continue
            got_id, pdu, engine = decode_reply(data, self.keys)
            if got_id == wanted_id:
                self.last_engine = engine
                return pdu

    def discover(self) -> None:
        msg_id = next(self._ids)
        pdu = self._exchange(v3_discovery(msg_id), msg_id)
        if pdu.tag != codec.REPORT or self.last_engine is None:
            raise ber.DecodeError("discovery_not_answered_by_report")
        self._sync(self.last_engine)
        self.keys = usm.usm_keys(self.creds, self.engine_id)

    def _sync(self, engine: EngineInfo) -> None:
        self.engine_id, self.boots, engine_time = engine
        self._time_base = engine_time - time.monotonic()

    # ---- requests ---------------------------------------------------------------------------

    def request(self, pdu_tag: int, arcs: Sequence[Oid], a: int = 0, b: int = 0) -> Reply:
        request_id = next(self._ids)
        pdu = encode_get(pdu_tag, request_id, arcs, a, b)
        if self.creds.version is SnmpVersion.V2C:
            return Reply(self._exchange(v2c_message(self.creds.community or "", pdu), request_id))
        return self._v3(pdu_tag, arcs, a, b, resync=True)

    def _v3(self, pdu_tag: int, arcs: Sequence[Oid], a: int, b: int, *, resync: bool) -> Reply:
        if self.keys is None:
            self.discover()
        assert self.keys is not None
        msg_id = next(self._ids)
        flags = self.flags
        if flags is None:
            flags = codec.FLAG_AUTH | (codec.FLAG_PRIV if self.keys.priv_key else 0)
        message = v3_message(
            self.keys,
            engine_id=self.engine_id,
            boots=self.boots,
            engine_time=max(0, int(self._time_base + time.monotonic())),
            msg_id=msg_id,
            salt=self._salt.next(),
            pdu=encode_get(pdu_tag, msg_id, arcs, a, b),
            flags=flags,
        )
        reply = Reply(self._exchange(message, msg_id))
        if (
            resync
            and reply.is_report
            and reply.varbinds
            and reply.varbinds[0][0] == oids.USM_STATS_NOT_IN_TIME_WINDOWS
        ):
            assert self.last_engine is not None
            self._sync(self.last_engine)
            return self._v3(pdu_tag, arcs, a, b, resync=False)
        return reply

    def get(self, *arcs: Oid) -> Reply:
        return self.request(codec.GET, arcs)

    def next(self, *arcs: Oid) -> Reply:
        return self.request(codec.GET_NEXT, arcs)

    def bulk(self, arcs: Sequence[Oid], non_repeaters: int = 0, max_repetitions: int = 10) -> Reply:
        return self.request(codec.GET_BULK, arcs, non_repeaters, max_repetitions)

    def walk(self, root: Oid, max_repetitions: int = 20) -> list[tuple[Oid, Value]]:
        """Every instance under ``root`` with GETBULK (v2c/v3), as snmpbulkwalk does."""
        out: list[tuple[Oid, Value]] = []
        cursor = root
        while True:
            reply = self.bulk([cursor], 0, max_repetitions)
            if reply.is_report or reply.error_status:
                raise ber.DecodeError(f"walk stopped: {reply.pdu}")
            for oid, value in reply.varbinds:
                if value.tag == ber.END_OF_MIB_VIEW or oid[: len(root)] != root:
                    return out
                out.append((oid, value))
                cursor = oid
            if not reply.varbinds:
                return out
