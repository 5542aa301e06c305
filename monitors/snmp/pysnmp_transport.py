"""The reference SNMP transport: pysnmp 7 on asyncio, SNMP v2c and v3 USM (authPriv).

How it uses pysnmp, and why:

- **Few engines, built lazily inside the running loop.** An ``SnmpEngine`` with an
  ``AsyncioDispatcher`` and one UDP socket (one more for IPv6 targets) serves up to
  ``devices_per_engine`` devices (default 250); a national poller holds ~20. Why not one for
  all: every new v3 peer adds a row to pysnmp's USM user table, and the next outgoing request
  rebuilds pysnmp's whole security-name map from that table (``__sec2usr``), so discovering N
  devices in one engine costs O(N²) — measured here, 4,750 devices in one engine spend minutes
  of CPU in their first cycle, 250 per engine a few seconds; once discovered, the cost per
  request is the same. Another engine is also made when two credential profiles use the same
  USM user name with different protocols or keys: pysnmp's user table is keyed by user name
  (per engine ID, and engine IDs are discovered later), so such profiles cannot share one.
- **Built once per device, reused.** The first request to a device registers its credentials
  (a v2c community or a USM user, shared by every device of that profile), target parameters and
  target address (host, port, timeout, retries) in the engine's LCD and caches the address name
  by device, with the variable bindings of the requests it is sent (a poll asks the same few
  sets of OIDs every time); later requests only send. A target that changes (new address,
  other credentials) is re-registered.
- **No MIB lookups.** Requests go straight to pysnmp's command generator
  (``pysnmp.entity.rfc3413.cmdgen``) with numeric OIDs; the high-level API's ``ObjectType``
  resolution layer — the part that loads MIB modules and may try to compile missing ones from
  MIB sources — is never used, and no MIB compiler or MIB source is attached to the engine.
- **Engine-ID discovery, time synchronisation and retries are pysnmp's**: the first v3 request
  to a device discovers its engine ID (a Report), pysnmp localises the keys for it and retries
  the request; a timed-out request is resent ``retries`` times, each waiting ``timeout_s``.

Every slot pysnmp hands back is checked (error indication, error status, error index and the
variable bindings themselves) and turned into a ``PollFailure`` — never an exception, never a
garbage value: a wrong v3 key is ``AUTH_FAILED`` ("authentication failed: check the v3 auth key
of profile ..."), an answer that is not valid SNMP or does not fit the request is
``MALFORMED`` — including datagrams pysnmp cannot decode at all, which it drops silently: they
are counted per peer address, so that a request to a device that only sent garbage ends as
``MALFORMED`` rather than ``TIMEOUT``. An answer with another request-id is indistinguishable from
a late answer to an earlier request: it is ignored, and the request times out. A missing object
is a ``VarBind`` of kind ``noSuchObject`` / ``noSuchInstance`` / ``endOfMibView``.

The transport does not know the credential profile's name (``SnmpTarget`` carries resolved
credentials only): failure texts say :data:`PROFILE_PLACEHOLDER`, which the poll engine replaces
with ``profile 'name'`` (see :func:`name_profile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher  # type: ignore[import-untyped]
from pysnmp.entity import config  # type: ignore[import-untyped]
from pysnmp.entity.engine import SnmpEngine  # type: ignore[import-untyped]
from pysnmp.entity.rfc3413 import cmdgen  # type: ignore[import-untyped]
from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
from pysnmp.proto import errind, rfc1902, rfc1905  # type: ignore[import-untyped]

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion
from monitors.snmp.base import (
    FailureCause,
    GetResult,
    Oid,
    PollFailure,
    SnmpCredentials,
    SnmpTarget,
    ValueKind,
    VarBind,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

PROFILE_PLACEHOLDER: Final = "the device's SNMP credential profile"
"""Failure texts name the profile this way; ``name_profile`` puts the real name in."""

DEVICES_PER_ENGINE: Final = 250  # see "Few engines" above
TIMER_RESOLUTION_S: Final = 0.1  # pysnmp's timeout clock ticks at this period
CROSSED_ANSWERS_TOLERATED: Final = 3  # answers from another address before giving up
REQUESTS_PER_DEVICE: Final = 32  # request varbind lists kept per device
MAX_MESSAGE_SIZE: Final = 65_507  # what we accept (msgMaxSize); agents cut GETBULK to theirs

AUTH_PROTOCOLS: Final[dict[SnmpAuthProtocol, tuple[int, ...]]] = {
    SnmpAuthProtocol.MD5: config.USM_AUTH_HMAC96_MD5,
    SnmpAuthProtocol.SHA: config.USM_AUTH_HMAC96_SHA,
    SnmpAuthProtocol.SHA224: config.USM_AUTH_HMAC128_SHA224,
    SnmpAuthProtocol.SHA256: config.USM_AUTH_HMAC192_SHA256,
    SnmpAuthProtocol.SHA384: config.USM_AUTH_HMAC256_SHA384,
    SnmpAuthProtocol.SHA512: config.USM_AUTH_HMAC384_SHA512,
}
# AES-192/256: the Blumenthal key extension (draft-blumenthal-aes-usm-04), which net-snmp and
# the lab implement. Cisco's "aes 192/256" uses Reeder's extension instead (pysnmp's
# USM_PRIV_CFB192_AES); the inventory has no value for it yet.
PRIV_PROTOCOLS: Final[dict[SnmpPrivProtocol, tuple[int, ...]]] = {
    SnmpPrivProtocol.DES: config.USM_PRIV_CBC56_DES,
    SnmpPrivProtocol.AES: config.USM_PRIV_CFB128_AES,
    SnmpPrivProtocol.AES192: config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    SnmpPrivProtocol.AES256: config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}

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
TOO_BIG: Final = 1

_NULL = univ.Null("")

# Response value types by BER tag (pyasn1 tag sets), most frequent first.
_KINDS: Final[dict[Any, ValueKind]] = {
    rfc1902.Counter64.tagSet: ValueKind.COUNTER64,
    rfc1902.Integer32.tagSet: ValueKind.INTEGER,
    rfc1902.OctetString.tagSet: ValueKind.OCTETS,
    rfc1902.Counter32.tagSet: ValueKind.COUNTER32,
    rfc1902.Gauge32.tagSet: ValueKind.GAUGE32,
    rfc1902.TimeTicks.tagSet: ValueKind.TIMETICKS,
    rfc1902.ObjectIdentifier.tagSet: ValueKind.OID,
    rfc1902.IpAddress.tagSet: ValueKind.IPADDRESS,
    rfc1902.Opaque.tagSet: ValueKind.OPAQUE,
    univ.Null.tagSet: ValueKind.NULL,
    rfc1905.NoSuchObject.tagSet: ValueKind.NO_SUCH_OBJECT,
    rfc1905.NoSuchInstance.tagSet: ValueKind.NO_SUCH_INSTANCE,
    rfc1905.EndOfMibView.tagSet: ValueKind.END_OF_MIB_VIEW,
}
_INT_KINDS: Final = frozenset(
    {
        ValueKind.INTEGER,
        ValueKind.COUNTER32,
        ValueKind.GAUGE32,
        ValueKind.TIMETICKS,
        ValueKind.COUNTER64,
    }
)
_UINT32_MAX: Final = 2**32 - 1
_UINT64_MAX: Final = 2**64 - 1


def name_profile(failure: PollFailure, profile: str | None) -> PollFailure:
    """``failure`` with :data:`PROFILE_PLACEHOLDER` replaced by ``profile 'name'``."""
    if profile is None or PROFILE_PLACEHOLDER not in failure.detail:
        return failure
    return PollFailure(
        failure.cause, failure.detail.replace(PROFILE_PLACEHOLDER, f"profile {profile!r}")
    )


def error_status_failure(status: int, index: int, oids: Sequence[Oid]) -> PollFailure:
    """The failure for a response with a non-zero error-status (``tooBig`` is recognisable:
    the detail starts with the status name)."""
    name = ERROR_STATUS_NAMES[status] if 0 <= status < len(ERROR_STATUS_NAMES) else "unknown"
    where = ""
    if 1 <= index <= len(oids):
        where = f" at {format_oid(oids[index - 1])}"
    elif index:
        where = f" at error-index {index} (outside the request)"
    advice = {
        TOO_BIG: "the answer would exceed the agent's message size; ask for fewer objects",
        2: "the agent does not serve this object; check the device's profile",
        6: "the agent refuses access; check its view (VACM) for this user/community",
        16: "the agent refuses access; check its view (VACM) for this user/community",
    }.get(status, "the agent could not answer; look at the device's SNMP logs")
    return PollFailure(
        FailureCause.ERROR_STATUS, f"{name} (error-status {status}){where}: {advice}"
    )


def is_too_big(failure: PollFailure) -> bool:
    return failure.cause is FailureCause.ERROR_STATUS and failure.detail.startswith("tooBig")


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, oid))


def to_varbind(oid: Oid, value: Any) -> VarBind:
    """A pysnmp (pyasn1) value as a ``VarBind``. Raises ``ValueError`` for an unknown type."""
    kind = _KINDS.get(value.tagSet)
    if kind is None:
        raise ValueError(f"{format_oid(oid)}: value of unknown type {value.tagSet!r}")
    if kind in _INT_KINDS:
        number = int(value)
        limit = _UINT64_MAX if kind is ValueKind.COUNTER64 else _UINT32_MAX
        low = -(2**31) if kind is ValueKind.INTEGER else 0
        if not low <= number <= limit:
            raise ValueError(f"{format_oid(oid)}: {kind} value {number} is out of range")
        return VarBind(oid, kind, number)
    if kind is ValueKind.OCTETS or kind is ValueKind.OPAQUE:
        return VarBind(oid, kind, value.asOctets())
    if kind is ValueKind.OID:
        return VarBind(oid, kind, tuple(value.asTuple()))
    if kind is ValueKind.IPADDRESS:
        octets = value.asOctets()
        if len(octets) != 4:
            raise ValueError(f"{format_oid(oid)}: IpAddress of {len(octets)} octets")
        return VarBind(oid, kind, ".".join(str(b) for b in octets))
    return VarBind(oid, kind, None)  # Null, noSuchObject, noSuchInstance, endOfMibView


# ---- the engine(s) and what is registered in them ------------------------------------------


@dataclass
class _Engine:
    """One pysnmp engine with its sockets and the USM users / communities it holds."""

    snmp: SnmpEngine
    loop: asyncio.AbstractEventLoop
    getter: cmdgen.GetCommandGenerator = field(default_factory=cmdgen.GetCommandGenerator)
    buller: cmdgen.BulkCommandGeneratorSingleRun = field(
        default_factory=cmdgen.BulkCommandGeneratorSingleRun
    )
    users: dict[str, str] = field(default_factory=dict)  # user name -> credentials key
    params: dict[str, str] = field(default_factory=dict)  # credentials key -> params name
    peers: int = 0  # devices registered
    domains: set[tuple[int, ...]] = field(default_factory=set)
    malformed: dict[tuple[str, int], int] = field(default_factory=dict)  # undecodable, by peer
    receiving: tuple[str, int] | None = None  # source of the datagram being dispatched
    crossed: int = 0  # answers matched to a request of another address (ignored, resent)


@dataclass(frozen=True, slots=True)
class _Peer:
    """What is registered for one device: reused by every request to it."""

    target: SnmpTarget
    engine: _Engine
    addr_name: str
    address: tuple[str, int]
    v3: bool
    requests: dict[tuple[Oid, ...], list[tuple[Any, Any]]] = field(default_factory=dict)

    def varbinds(self, oids: Sequence[Oid]) -> list[tuple[Any, Any]]:
        """The request's variable bindings, built once per set of OIDs (a poll asks the same
        few sets every time)."""
        key = tuple(oids)
        built = self.requests.get(key)
        if built is None:
            if len(self.requests) >= REQUESTS_PER_DEVICE:
                self.requests.clear()
            built = self.requests[key] = [(rfc1902.ObjectName(oid), _NULL) for oid in key]
        return built


def _credentials_key(creds: SnmpCredentials) -> str:
    """A stable, secret-free name for a set of credentials (a hash; secrets never leave)."""
    h = hashlib.sha256()
    for part in (
        creds.version.value,
        creds.community or "",
        creds.user or "",
        creds.auth_protocol.value if creds.auth_protocol else "",
        creds.auth_key or "",
        creds.priv_protocol.value if creds.priv_protocol else "",
        creds.priv_key or "",
    ):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _config_problem(creds: SnmpCredentials) -> str | None:
    """What is wrong with the credentials on our side, or None."""
    if creds.version is SnmpVersion.V2C:
        return None if creds.community else "SNMP v2c needs a community"
    missing = [
        name
        for name, value in (
            ("user", creds.user),
            ("auth_protocol", creds.auth_protocol),
            ("auth_key", creds.auth_key),
            ("priv_protocol", creds.priv_protocol),
            ("priv_key", creds.priv_key),
        )
        if not value
    ]
    if missing:
        return f"SNMP v3 authPriv needs {', '.join(missing)}"
    for name, key in (("auth", creds.auth_key), ("priv", creds.priv_key)):
        if key is not None and len(key) < 8:
            return f"the v3 {name} key is shorter than 8 characters (RFC 3414 minimum)"
    if creds.auth_protocol not in AUTH_PROTOCOLS:
        return f"auth protocol {creds.auth_protocol} is not supported"
    if creds.priv_protocol not in PRIV_PROTOCOLS:
        return f"privacy protocol {creds.priv_protocol} is not supported"
    return None


def _domain(host: str) -> tuple[tuple[int, ...], Callable[..., Any]]:
    if ipaddress.ip_address(host).version == 6:
        return udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport
    return udp.DOMAIN_NAME, udp.UdpAsyncioTransport


# ---- the transport ---------------------------------------------------------------------------

_Raw = tuple[Any, int, int, Sequence[tuple[Any, Any]]]


class PysnmpTransport:
    """``SnmpTransport`` on pysnmp 7 asyncio. Create and use it inside one running loop."""

    def __init__(self, *, devices_per_engine: int = DEVICES_PER_ENGINE) -> None:
        self.devices_per_engine = max(1, devices_per_engine)
        self._engines: list[_Engine] = []
        self._peers: dict[str, _Peer] = {}
        self._next_id = 0
        self._closed = False

    # -- SnmpTransport ------------------------------------------------------------------------

    async def get(self, target: SnmpTarget, oids: Sequence[Oid]) -> GetResult:
        if not oids:
            return []
        peer = self._peer(target)
        if isinstance(peer, PollFailure):
            return peer
        request = peer.varbinds(oids)

        def send(callback: Callable[..., None]) -> None:
            peer.engine.getter.send_varbinds(
                peer.engine.snmp, peer.addr_name, None, b"", request, callback
            )

        raw = await self._exchange(peer, send)
        if isinstance(raw, PollFailure):
            return raw
        return _check_get(raw, oids)

    async def bulk(
        self,
        target: SnmpTarget,
        non_repeaters: Sequence[Oid],
        repeaters: Sequence[Oid],
        max_repetitions: int,
    ) -> GetResult:
        if not non_repeaters and not repeaters:
            return []
        peer = self._peer(target)
        if isinstance(peer, PollFailure):
            return peer
        reps = max(0, max_repetitions) if repeaters else 0
        request = peer.varbinds((*non_repeaters, *repeaters))
        nonrep = len(non_repeaters)

        def send(callback: Callable[..., None]) -> None:
            peer.engine.buller.send_varbinds(
                peer.engine.snmp, peer.addr_name, None, b"", nonrep, reps, request, callback
            )

        raw = await self._exchange(peer, send)
        if isinstance(raw, PollFailure):
            return raw
        return _check_bulk(raw, non_repeaters, repeaters, reps)

    async def close(self) -> None:
        """Close every socket and the pysnmp timers. Idempotent."""
        self._closed = True
        self._peers.clear()
        engines, self._engines = self._engines, []
        for engine in engines:
            dispatcher = engine.snmp.transport_dispatcher
            if dispatcher is None:
                continue
            with contextlib.suppress(PySnmpError, OSError, RuntimeError):
                engine.snmp.close_dispatcher()
        await asyncio.sleep(0)  # let the sockets' close callbacks run

    # -- what other parts may ask ---------------------------------------------------------

    @property
    def engines(self) -> int:
        """How many pysnmp engines are in use."""
        return len(self._engines)

    def forget(self, device: str) -> None:
        """Drop the cached registration of ``device`` (re-built on its next request)."""
        self._peers.pop(device, None)

    # -- registration ---------------------------------------------------------------------

    def _peer(self, target: SnmpTarget) -> _Peer | PollFailure:
        peer = self._peers.get(target.device)
        if peer is not None and peer.target == target:
            return peer
        if self._closed:
            return PollFailure(FailureCause.INTERNAL, "the SNMP transport is closed")
        problem = _config_problem(target.credentials)
        if problem is not None:
            return PollFailure(FailureCause.CONFIG, f"{problem}: fix {PROFILE_PLACEHOLDER}")
        try:
            domain, transport_cls = _domain(target.host)
        except ValueError:
            return PollFailure(
                FailureCause.CONFIG,
                f"management address {target.host!r} is not an IP address; fix the inventory",
            )
        try:
            engine = self._engine_for(target.credentials)
            if domain not in engine.domains:
                config.add_transport(
                    engine.snmp, domain, transport_cls(loop=engine.loop).open_client_mode()
                )
                engine.domains.add(domain)
            params = self._params(engine, target.credentials)
            self._next_id += 1
            addr_name = f"a{self._next_id}"
            address = (str(ipaddress.ip_address(target.host)), target.port)
            config.add_target_address(
                engine.snmp,
                addr_name,
                domain,
                address,
                params,
                max(1, round(target.timeout_s * 100)),
                max(0, target.retries),
            )
        except (PySnmpError, PyAsn1Error, OSError) as err:
            log.error("snmp %s: cannot register the target: %s", target.device, err)
            return PollFailure(FailureCause.INTERNAL, f"pysnmp refused the target: {err}")
        if peer is not None and peer.target != target:
            log.info("snmp %s: target changed, registered again", target.device)
        engine.peers += 1
        peer = _Peer(
            target, engine, addr_name, address, target.credentials.version is SnmpVersion.V3
        )
        self._peers[target.device] = peer
        return peer

    def _new_engine(self) -> _Engine:
        loop = asyncio.get_running_loop()
        snmp = SnmpEngine(maxMessageSize=MAX_MESSAGE_SIZE)
        dispatcher = AsyncioDispatcher(loop=loop)
        dispatcher.set_timer_resolution(TIMER_RESOLUTION_S)
        snmp.register_transport_dispatcher(dispatcher)
        engine = _Engine(snmp=snmp, loop=loop)
        (parse_errors,) = snmp.get_mib_builder().import_symbols(
            "__SNMPv2-MIB", "snmpInASNParseErrs"
        )
        dispatch = snmp.message_dispatcher.receive_message

        # In place of the engine's own receive callback (which only calls receive_message):
        # the same, plus counting per peer the datagrams pysnmp could not decode, which it
        # drops silently — so that a device answering garbage is MALFORMED, not a timeout.
        def receive(_dispatcher: Any, domain: Any, address: Any, message: bytes) -> None:
            key = (str(address[0]), int(address[1]))
            before = int(parse_errors.syntax)
            engine.receiving = key  # read by a request's callback, which runs inside dispatch
            try:
                dispatch(snmp, domain, address, message)
            except Exception as err:  # a hostile datagram must not upset the loop
                log.debug("snmp: datagram from %s broke pysnmp: %r", address, err)
                undecodable = True
            else:
                undecodable = int(parse_errors.syntax) != before
            finally:
                engine.receiving = None
            if undecodable:
                engine.malformed[key] = engine.malformed.get(key, 0) + 1

        dispatcher.unregister_recv_callback()
        dispatcher.register_recv_callback(receive)
        self._engines.append(engine)
        return engine

    def _engine_for(self, creds: SnmpCredentials) -> _Engine:
        """The first engine with room where these credentials fit (no other keys under the
        same USM user name)."""
        key = _credentials_key(creds)
        user = (creds.user or "") if creds.version is SnmpVersion.V3 else None
        for engine in self._engines:
            if engine.peers >= self.devices_per_engine:
                continue
            if user is None or engine.users.get(user, key) == key:
                return engine
        return self._new_engine()

    def _params(self, engine: _Engine, creds: SnmpCredentials) -> str:
        key = _credentials_key(creds)
        name = engine.params.get(key)
        if name is not None:
            return name
        name = f"p{key}"
        if creds.version is SnmpVersion.V3:
            assert creds.user and creds.auth_protocol and creds.priv_protocol  # checked above
            config.add_v3_user(
                engine.snmp,
                creds.user,
                AUTH_PROTOCOLS[creds.auth_protocol],
                creds.auth_key,
                PRIV_PROTOCOLS[creds.priv_protocol],
                creds.priv_key,
            )
            engine.users[creds.user] = key
            config.add_target_parameters(engine.snmp, name, creds.user, "authPriv", 3)
        else:
            security_name = f"c{key}"
            config.add_v1_system(
                engine.snmp, security_name, creds.community, securityName=security_name
            )
            config.add_target_parameters(engine.snmp, name, security_name, "noAuthNoPriv", 1)
        engine.params[key] = name
        return name

    # -- one request --------------------------------------------------------------------------

    async def _exchange(
        self, peer: _Peer, send: Callable[[Callable[..., None]], None]
    ) -> _Raw | PollFailure:
        """Send, wait for the answer; the answer must come from the device's own address.

        pysnmp matches an answer to its request by request-id alone (SNMPv2c has nothing
        else; for v3 the keys localised to the device's engine ID protect it), so a datagram
        from another host carrying the right request-id would be taken as the device's answer.
        Such an answer is dropped and the request sent again (at most
        ``CROSSED_ANSWERS_TOLERATED`` times; then the device's poll is ``MALFORMED``).
        """
        engine = peer.engine
        seen = engine.malformed.get(peer.address, 0)
        started = time.monotonic()
        for _attempt in range(CROSSED_ANSWERS_TOLERATED + 1):
            future: asyncio.Future[tuple[_Raw, tuple[str, int] | None]] = (
                engine.loop.create_future()
            )

            def done(
                _engine: Any,
                _handle: Any,
                indication: Any,
                status: Any,
                index: Any,
                varbinds: Any,
                _ctx: Any,
                future: asyncio.Future[tuple[_Raw, tuple[str, int] | None]] = future,
            ) -> None:
                if not future.done():
                    raw = (indication, int(status or 0), int(index or 0), varbinds or ())
                    future.set_result((raw, engine.receiving))

            try:
                send(done)
            except PySnmpError as err:
                return _engine_failure(err, peer)
            except (PyAsn1Error, ValueError) as err:
                return PollFailure(
                    FailureCause.INTERNAL, f"pysnmp could not build the request: {err}"
                )
            (indication, status, index, varbinds), source = await future
            if indication:
                bad = engine.malformed.get(peer.address, 0) - seen
                return _indication_failure(indication, peer, bad, time.monotonic() - started)
            if source is None or source == peer.address:
                return (None, status, index, varbinds)
            engine.crossed += 1
            log.warning(
                "snmp %s: an answer to its request came from %s:%d, not %s:%d; ignored",
                peer.target.device,
                *source,
                *peer.address,
            )
        return PollFailure(
            FailureCause.MALFORMED,
            f"answers to the requests to {peer.address[0]}:{peer.address[1]} kept coming from "
            "other addresses (spoofed or crossed answers); check the network path",
        )


# ---- interpreting what came back -----------------------------------------------------------


def _engine_failure(err: PySnmpError, peer: _Peer) -> PollFailure:
    text = str(err)
    if "Ciphering services not available" in text or "cryptography" in text.lower():
        return PollFailure(
            FailureCause.CONFIG,
            "pysnmp cannot encrypt (AES needs the 'cryptography' package); install it",
        )
    log.warning("snmp %s: pysnmp failed to send: %s", peer.target.device, text)
    return PollFailure(FailureCause.INTERNAL, f"pysnmp failed to send the request: {text}")


def _indication_failure(indication: Any, peer: _Peer, bad: int, waited: float) -> PollFailure:
    target = peer.target
    creds = target.credentials
    who = f"user {creds.user!r}" if creds.user else "community"
    if isinstance(indication, errind.RequestTimedOut):
        if bad > 0:
            return PollFailure(
                FailureCause.MALFORMED,
                f"{bad} datagram(s) from {target.host}:{target.port} in {waited:.1f} s could not "
                "be decoded as SNMP, and no valid answer came; check the agent",
            )
        tries = target.retries + 1
        advice = (
            "check that the device is up and reachable, and the v3 user exists on it"
            if peer.v3
            else "check that the device is up and reachable, and the community is right "
            "(agents ignore a wrong community)"
        )
        return PollFailure(
            FailureCause.TIMEOUT,
            f"no answer from {target.host}:{target.port} after {tries} "
            f"tr{'y' if tries == 1 else 'ies'} of {target.timeout_s:g} s: {advice}",
        )
    if isinstance(indication, errind.WrongDigest | errind.AuthenticationFailure):
        return PollFailure(
            FailureCause.AUTH_FAILED,
            f"authentication failed: check the v3 auth key of {PROFILE_PLACEHOLDER} "
            f"({who}, {creds.auth_protocol}); the agent reported a wrong digest",
        )
    if isinstance(indication, errind.UnknownUserName | errind.UnknownSecurityName):
        return PollFailure(
            FailureCause.AUTH_FAILED,
            f"authentication failed: the agent does not know {who}; check the v3 user of "
            f"{PROFILE_PLACEHOLDER} and the device's USM configuration",
        )
    if isinstance(indication, errind.DecryptionError):
        return PollFailure(
            FailureCause.AUTH_FAILED,
            f"authentication failed: the agent could not decrypt the request; check the v3 "
            f"privacy key and protocol ({creds.priv_protocol}) of {PROFILE_PLACEHOLDER}",
        )
    if isinstance(indication, errind.UnsupportedSecurityLevel):
        return PollFailure(
            FailureCause.AUTH_FAILED,
            f"authentication failed: the agent does not offer authPriv for {who}; configure "
            "the user with auth and privacy on the device",
        )
    if isinstance(indication, errind.UnknownEngineID | errind.EngineIDMismatch):
        return PollFailure(
            FailureCause.UNKNOWN_ENGINE,
            f"engine-ID discovery with {target.host}:{target.port} failed ({indication}); check "
            "that the agent answers SNMPv3 and its engine ID is stable",
        )
    if isinstance(indication, errind.NotInTimeWindow):
        return PollFailure(
            FailureCause.NOT_IN_TIME_WINDOW,
            "the agent keeps reporting notInTimeWindow after resynchronisation; its engine "
            "boots/time are inconsistent (a cloned engine ID?)",
        )
    if isinstance(indication, errind.EncryptionError | errind.NoEncryption):
        return PollFailure(
            FailureCause.CONFIG,
            f"pysnmp cannot encrypt ({indication}); install the 'cryptography' package",
        )
    if isinstance(indication, errind.UnsupportedAuthProtocol | errind.UnsupportedPrivProtocol):
        return PollFailure(
            FailureCause.CONFIG, f"{indication}: change the protocols of {PROFILE_PLACEHOLDER}"
        )
    if (
        isinstance(
            indication,
            errind.ParseError
            | errind.DataMismatch
            | errind.EmptyResponse
            | errind.InvalidMsg
            | errind.UnsupportedPDUtype
            | errind.OidNotIncreasing,
        )
        or indication == "badResponse"
    ):
        return PollFailure(
            FailureCause.MALFORMED, f"the agent's answer is not valid SNMP: {indication}"
        )
    if isinstance(indication, errind.TooBig):
        return PollFailure(
            FailureCause.INTERNAL, f"the request is too big to send ({indication}); ask for less"
        )
    return PollFailure(FailureCause.MALFORMED, f"pysnmp reported: {indication}")


def _convert(raw: Sequence[tuple[Any, Any]]) -> list[VarBind] | PollFailure:
    out: list[VarBind] = []
    try:
        for name, value in raw:
            out.append(to_varbind(tuple(name.asTuple()), value))
    except (ValueError, AttributeError, TypeError, PyAsn1Error) as err:
        return PollFailure(FailureCause.MALFORMED, f"the agent's answer is not valid SNMP: {err}")
    return out


def _check_get(raw: _Raw | PollFailure, oids: Sequence[Oid]) -> GetResult:
    if isinstance(raw, PollFailure):
        return raw
    if raw[1]:
        return error_status_failure(raw[1], raw[2], oids)
    varbinds = _convert(raw[3])
    if isinstance(varbinds, PollFailure):
        return varbinds
    return check_get_answer(varbinds, oids)


def _check_bulk(
    raw: _Raw | PollFailure,
    non_repeaters: Sequence[Oid],
    repeaters: Sequence[Oid],
    max_repetitions: int,
) -> GetResult:
    if isinstance(raw, PollFailure):
        return raw
    if raw[1]:
        return error_status_failure(raw[1], raw[2], [*non_repeaters, *repeaters])
    varbinds = _convert(raw[3])
    if isinstance(varbinds, PollFailure):
        return varbinds
    return check_bulk_answer(varbinds, non_repeaters, repeaters, max_repetitions)


# ---- what an answer must look like (shared with the v2c fast path, ``fastpath``) ----------

_NOT_IN_BULK: Final = frozenset({ValueKind.NO_SUCH_OBJECT, ValueKind.NO_SUCH_INSTANCE})


def check_get_answer(varbinds: list[VarBind], oids: Sequence[Oid]) -> GetResult:
    """A GET's varbinds, or MALFORMED when they do not answer ``oids`` one for one."""
    if len(varbinds) != len(oids):
        return PollFailure(
            FailureCause.MALFORMED,
            f"asked for {len(oids)} objects, the agent answered {len(varbinds)}",
        )
    for asked, got in zip(oids, varbinds, strict=True):
        if got.oid != tuple(asked):
            return PollFailure(
                FailureCause.MALFORMED,
                f"asked for {format_oid(asked)}, the agent answered {format_oid(got.oid)}",
            )
        if got.kind is ValueKind.END_OF_MIB_VIEW:
            return PollFailure(
                FailureCause.MALFORMED,
                f"endOfMibView in answer to a GET of {format_oid(asked)} (only GETNEXT/GETBULK "
                "may return it)",
            )
    return varbinds


def check_bulk_answer(
    varbinds: list[VarBind],
    non_repeaters: Sequence[Oid],
    repeaters: Sequence[Oid],
    max_repetitions: int,
) -> GetResult:
    """A GETBULK's varbinds, or MALFORMED when their count or order cannot answer the request."""
    n, m = len(non_repeaters), len(repeaters)
    if len(varbinds) < n:
        return PollFailure(
            FailureCause.MALFORMED,
            f"GETBULK with {n} non-repeaters: the agent answered only {len(varbinds)} objects",
        )
    rest = len(varbinds) - n
    if m == 0 and rest:
        return PollFailure(
            FailureCause.MALFORMED, f"GETBULK: {rest} objects more than the non-repeaters asked"
        )
    if m and rest > m * max_repetitions:
        return PollFailure(
            FailureCause.MALFORMED,
            f"GETBULK: {rest} repeated objects, more than {m} x {max_repetitions} asked",
        )
    # Every answer comes after what it answers (GETNEXT semantics), unless the view ended.
    previous: list[Oid] = [tuple(o) for o in (*non_repeaters, *repeaters)]
    end_of_view = ValueKind.END_OF_MIB_VIEW
    for i, vb in enumerate(varbinds):
        slot = i if i < n else n + (i - n) % m
        kind = vb.kind
        if kind is end_of_view:
            continue
        before = previous[slot]
        if vb.oid <= before:
            return PollFailure(
                FailureCause.MALFORMED,
                f"GETBULK: the agent answered {format_oid(vb.oid)} after {format_oid(before)} "
                "(OIDs must increase)",
            )
        if kind in _NOT_IN_BULK:
            return PollFailure(
                FailureCause.MALFORMED,
                f"GETBULK: {kind} for {format_oid(vb.oid)} (only GET may return it)",
            )
        previous[slot] = vb.oid
    return varbinds
