"""The lean SNMPv2c fast path: one UDP socket for every device, pysnmp for everything else.

``FastV2cTransport`` implements :class:`~monitors.snmp.base.SnmpTransport` for v2c GET and
GETBULK with the codec in :mod:`monitors.snmp.ber`. Why it exists: pysnmp spends about 60 µs of
pyasn1 decoding per varbind, the lean codec about 2 µs, and polling thousands of devices is
mostly decoding (``bench/poll_vs_snmp_exporter.py`` measures the whole difference).

How it works:

- one asyncio datagram socket carries every in-flight request; a response is matched by its
  request-id **and** its source address (the target's IPv4 address and port). A datagram with an
  unknown request-id, or from another address, is ignored and counted; the request keeps waiting
  for its own answer until its timeout;
- each request is rendered from a template encoded once per (community, PDU type, OIDs,
  non-repeaters, max-repetitions): only the 4 request-id octets change between polls;
- per request: ``target.timeout_s`` per attempt and ``target.retries`` retransmissions of the
  same message (same request-id, so a late answer to the first attempt still counts); then a
  ``TIMEOUT`` — or ``MALFORMED`` when undecodable datagrams came from the device meanwhile;
- the answer is checked exactly as :class:`~monitors.snmp.pysnmp_transport.PysnmpTransport`
  checks pysnmp's (same failures, same texts): error-status, varbind count and OIDs of a GET,
  GETBULK shape and ordering, exceptions where they may not appear.

It never guesses. Whatever it does not understand goes to the ``fallback`` transport (pysnmp,
the reference for correctness) as a fresh request, and the fallback's answer is the answer:
v3 targets, a target without a community or with a non-ASCII one, a host that is not an IPv4
literal, a request the codec cannot encode, and a response — with the right request-id, from
the right address — that the codec cannot decode completely, with another version or PDU type,
or with a community other than the one sent. ``stats`` counts all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from inventory.enums import SnmpVersion
from monitors.snmp import ber
from monitors.snmp.base import (
    FailureCause,
    GetResult,
    Oid,
    PollFailure,
    SnmpTarget,
    SnmpTransport,
)
from monitors.snmp.pysnmp_transport import (
    check_bulk_answer,
    check_get_answer,
    error_status_failure,
)

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

CACHE_MAX: Final = 50_000  # request templates / addresses / undecodable counters kept
RECEIVE_BUFFER: Final = 8 * 2**20  # asked for; the kernel caps it at net.core.rmem_max

Address = tuple[str, int]
_TemplateKey = tuple[bytes, int, tuple[Oid, ...], int, int]


@dataclass
class FastPathStats:
    """What the fast path did; every ignored datagram and every delegation is counted."""

    requests: int = 0  # requests sent on the fast path
    datagrams_sent: int = 0  # retransmissions included
    retransmissions: int = 0
    responses: int = 0  # responses accepted (matched and decoded)
    timeouts: int = 0
    ignored_unknown_id: int = 0  # no request in flight with that request-id
    ignored_wrong_source: int = 0  # a request-id in flight, but from another address
    ignored_unreadable: int = 0  # not even a request-id could be read
    delegated: Counter[str] = field(default_factory=Counter)  # reason -> requests given to pysnmp

    def delegated_total(self) -> int:
        return sum(self.delegated.values())


@dataclass(frozen=True, slots=True)
class _Delegate:
    """A request's outcome: hand it to the fallback transport."""

    reason: str


_Outcome = ber.Response | PollFailure | _Delegate


class _Pending:
    """One request in flight."""

    __slots__ = (
        "addr",
        "community",
        "future",
        "message",
        "request_id",
        "retries_left",
        "started",
        "target",
        "timer",
        "undecodable_before",
    )

    def __init__(
        self,
        request_id: int,
        future: asyncio.Future[_Outcome],
        target: SnmpTarget,
        addr: Address,
        community: bytes,
        message: bytes,
    ) -> None:
        self.request_id = request_id
        self.future = future
        self.target = target
        self.addr = addr
        self.community = community
        self.message = message
        self.retries_left = max(0, target.retries)
        self.timer: asyncio.TimerHandle | None = None
        self.started = 0.0
        self.undecodable_before = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: FastV2cTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors on an unconnected socket name no request: the request times out.
        log.debug("fast path: socket error %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(exc)


class FastV2cTransport:
    """SNMPv2c GET/GETBULK on one shared UDP socket; anything else goes to ``fallback``.

    Create and use it inside one running loop. ``close()`` closes the fallback too: the fast
    transport owns it once given.
    """

    def __init__(
        self,
        fallback: SnmpTransport,
        *,
        local_host: str = "0.0.0.0",  # devices sit on any network
        cache_max: int = CACHE_MAX,
    ) -> None:
        self.fallback = fallback
        self.stats = FastPathStats()
        self._local_host = local_host
        self._cache_max = cache_max
        self._templates: dict[_TemplateKey, ber.RequestTemplate] = {}
        self._addresses: dict[tuple[str, int], Address | None] = {}
        self._undecodables: dict[Address, int] = {}  # unmatched, undecodable, per source
        self._pending: dict[int, _Pending] = {}
        self._next_id = ber.REQUEST_ID_MIN
        self._transport: asyncio.DatagramTransport | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False

    # ---- the SnmpTransport protocol -----------------------------------------------------------

    async def get(self, target: SnmpTarget, oids: Sequence[Oid]) -> GetResult:
        if not oids:
            return []
        outcome = await self._request(target, ber.GET_REQUEST, oids, 0, 0)
        if isinstance(outcome, _Delegate):
            self.stats.delegated[outcome.reason] += 1
            return await self.fallback.get(target, oids)
        if isinstance(outcome, PollFailure):
            return outcome
        if outcome.error_status:
            return error_status_failure(outcome.error_status, outcome.error_index, oids)
        return check_get_answer(outcome.varbinds, oids)

    async def bulk(
        self,
        target: SnmpTarget,
        non_repeaters: Sequence[Oid],
        repeaters: Sequence[Oid],
        max_repetitions: int,
    ) -> GetResult:
        if not non_repeaters and not repeaters:
            return []
        reps = max(0, max_repetitions) if repeaters else 0
        asked = (*non_repeaters, *repeaters)
        outcome = await self._request(target, ber.GET_BULK_REQUEST, asked, len(non_repeaters), reps)
        if isinstance(outcome, _Delegate):
            self.stats.delegated[outcome.reason] += 1
            return await self.fallback.bulk(target, non_repeaters, repeaters, max_repetitions)
        if isinstance(outcome, PollFailure):
            return outcome
        if outcome.error_status:
            return error_status_failure(outcome.error_status, outcome.error_index, asked)
        return check_bulk_answer(outcome.varbinds, non_repeaters, repeaters, reps)

    async def close(self) -> None:
        """Fail what is in flight, close the socket and the fallback. Idempotent."""
        self._closed = True
        for pending in list(self._pending.values()):
            self._finish(pending, PollFailure(FailureCause.INTERNAL, "the SNMP transport closed"))
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        await self.fallback.close()

    # ---- requests -----------------------------------------------------------------------------

    async def _request(
        self,
        target: SnmpTarget,
        pdu_tag: int,
        oids: Sequence[Oid],
        non_repeaters: int,
        max_repetitions: int,
    ) -> _Outcome:
        creds = target.credentials
        if creds.version is not SnmpVersion.V2C:
            return _Delegate("not_v2c")
        if not creds.community:
            return _Delegate("no_community")
        if not creds.community.isascii():
            return _Delegate("community_not_ascii")  # its octets are pysnmp's choice
        addr = self._address(target.host, target.port)
        if addr is None:
            return _Delegate("not_ipv4_literal")
        community = creds.community.encode("ascii")
        template = self._template(community, pdu_tag, oids, non_repeaters, max_repetitions)
        if template is None:
            return _Delegate("not_encodable")
        if self._closed:
            return PollFailure(FailureCause.INTERNAL, "the SNMP transport is closed")
        transport = self._transport or await self._open()
        loop = asyncio.get_running_loop()
        request_id = self._allocate_id()
        pending = _Pending(
            request_id, loop.create_future(), target, addr, community, template.render(request_id)
        )
        pending.started = loop.time()
        pending.undecodable_before = self._undecodables.get(addr, 0)
        self._pending[request_id] = pending
        self.stats.requests += 1
        self.stats.datagrams_sent += 1
        transport.sendto(pending.message, addr)
        pending.timer = loop.call_later(target.timeout_s, self._expired, pending)
        try:
            return await pending.future
        finally:
            if self._pending.get(request_id) is pending:  # cancelled while waiting
                del self._pending[request_id]
                pending.timer.cancel()

    def _address(self, host: str, port: int) -> Address | None:
        key = (host, port)
        try:
            return self._addresses[key]
        except KeyError:
            pass
        try:
            addr: Address | None = (str(ipaddress.IPv4Address(host)), port)
        except ValueError:
            addr = None  # a name or IPv6: pysnmp resolves and speaks those
        if len(self._addresses) >= self._cache_max:
            self._addresses.clear()
        self._addresses[key] = addr
        return addr

    def _template(
        self,
        community: bytes,
        pdu_tag: int,
        oids: Sequence[Oid],
        non_repeaters: int,
        max_repetitions: int,
    ) -> ber.RequestTemplate | None:
        key = (community, pdu_tag, tuple(oids), non_repeaters, max_repetitions)
        template = self._templates.get(key)
        if template is None:
            try:
                template = ber.request_template(*key)
            except ValueError as err:
                log.debug("fast path: cannot encode the request (%s); pysnmp takes it", err)
                return None
            if len(self._templates) >= self._cache_max:
                self._templates.clear()
            self._templates[key] = template
        return template

    def _allocate_id(self) -> int:
        rid = self._next_id
        while rid in self._pending:
            rid = rid + 1 if rid < ber.REQUEST_ID_MAX else ber.REQUEST_ID_MIN
        self._next_id = rid + 1 if rid < ber.REQUEST_ID_MAX else ber.REQUEST_ID_MIN
        return rid

    async def _open(self) -> asyncio.DatagramTransport:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._transport is None:
                loop = asyncio.get_running_loop()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                    sock.bind((self._local_host, 0))
                    sock.setblocking(False)
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _Protocol(self), sock=sock
                    )
                except BaseException:
                    sock.close()
                    raise
                self._transport = transport
            return self._transport

    def _expired(self, pending: _Pending) -> None:
        if self._pending.get(pending.request_id) is not pending:
            return
        target = pending.target
        loop = asyncio.get_running_loop()
        if pending.retries_left > 0 and self._transport is not None:
            pending.retries_left -= 1
            self.stats.retransmissions += 1
            self.stats.datagrams_sent += 1
            self._transport.sendto(pending.message, pending.addr)
            pending.timer = loop.call_later(target.timeout_s, self._expired, pending)
            return
        self.stats.timeouts += 1
        bad = self._undecodables.get(pending.addr, 0) - pending.undecodable_before
        self._finish(pending, _timeout_failure(target, bad, loop.time() - pending.started))

    def _finish(self, pending: _Pending, outcome: _Outcome) -> None:
        if self._pending.get(pending.request_id) is pending:
            del self._pending[pending.request_id]
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.future.done():
            pending.future.set_result(outcome)

    # ---- responses ----------------------------------------------------------------------------

    def _undecodable(self, addr: tuple[Any, ...]) -> None:
        """Count a datagram from ``addr`` that no request took and that could not be decoded:
        a request to that address that then times out is MALFORMED, as with pysnmp."""
        key = (str(addr[0]), int(addr[1]))
        if key not in self._undecodables and len(self._undecodables) >= self._cache_max:
            self._undecodables.clear()
        self._undecodables[key] = self._undecodables.get(key, 0) + 1

    def _received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            response = ber.decode_response(data)
        except ber.NotUnderstood as err:
            self._not_understood(data, addr, err.reason)
            return
        pending = self._pending.get(response.request_id)
        if pending is None:
            self.stats.ignored_unknown_id += 1  # a late answer, most likely
            return
        if addr != pending.addr:
            self.stats.ignored_wrong_source += 1
            return
        if response.community != pending.community:
            self._finish(pending, _Delegate("response_community"))
            return
        self.stats.responses += 1
        self._finish(pending, response)

    def _not_understood(self, data: bytes, addr: tuple[Any, ...], reason: str) -> None:
        header = ber.peek_header(data)
        pending = None if header is None else self._pending.get(header.request_id)
        if pending is not None and addr == pending.addr:
            self._finish(pending, _Delegate(f"response_{reason}"))
            return
        if header is None:
            self.stats.ignored_unreadable += 1
        elif pending is None:
            self.stats.ignored_unknown_id += 1
        else:
            self.stats.ignored_wrong_source += 1
        self._undecodable(addr)

    def _lost(self, exc: Exception | None) -> None:
        self._transport = None
        if exc is not None:
            log.warning("fast path: the UDP socket closed: %s", exc)
        for pending in list(self._pending.values()):
            self._finish(
                pending,
                PollFailure(FailureCause.INTERNAL, f"the SNMP transport's socket closed: {exc}"),
            )


# ---- failures only the fast path sees (answers are checked by the pysnmp transport's rules) ----


def _timeout_failure(target: SnmpTarget, bad: int, waited: float) -> PollFailure:
    if bad > 0:
        return PollFailure(
            FailureCause.MALFORMED,
            f"{bad} datagram(s) from {target.host}:{target.port} in {waited:.1f} s could not "
            "be decoded as SNMP, and no valid answer came; check the agent",
        )
    tries = max(0, target.retries) + 1
    return PollFailure(
        FailureCause.TIMEOUT,
        f"no answer from {target.host}:{target.port} after {tries} "
        f"tr{'y' if tries == 1 else 'ies'} of {target.timeout_s:g} s: check that the device is "
        "up and reachable, and the community is right (agents ignore a wrong community)",
    )
