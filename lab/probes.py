"""Probe responders: every link's far-end address answers UDP echo with the link's quality.

A datagram sent to ``Link.probe_address:port`` (RFC 862 echo, port 7 by default) comes back
with its payload unchanged after the link's latency, spread by its jitter, unless it is lost:

- no answer at all while ``lab.traffic.link_usable`` says the link cannot carry traffic (cut,
  interface down, satellite terminal muted or unlocked, router powered off) — checked when the
  probe arrives and again when the reply is due;
- dropped with probability ``loss`` from ``Link.effective()`` (faults plus rain fade);
- delayed by ``latency + N(0, sigma)`` ms (never below 0), the RTT a prober measures, with
  ``sigma = jitter * sqrt(pi) / 2``: the mean absolute difference of consecutive RTTs (what
  probers and RFC 3550 call jitter) then comes out as the link's ``jitter``.

Replies are scheduled with ``loop.call_later`` on the running loop (nothing sleeps) and the
number waiting is capped (``max_pending``): past it, probes are dropped and counted.

Why no ICMP: the lab's addresses live on ``lo`` (127.0.0.0/8), and the kernel answers ICMP echo
for them itself, at once, with no loss — a user-space process cannot delay or drop those
replies (that needs raw sockets plus netfilter, or ``tc netem``, which this kernel lacks). So
probes of lab links must use UDP echo; an ICMP ping of a probe address only proves the host.

Sockets: when every probe address is in 127.0.0.0/8 the responder uses ONE socket bound to the
wildcard address with ``IP_PKTINFO`` (it reads each datagram's destination and replies from
it), which saves one file descriptor per link (~4,600 at national scale). Datagrams to any
address that is not a known probe address are ignored, and the kernel never delivers traffic
from outside to 127/8. Otherwise (or with ``shared_socket=False``) it binds one socket per
probe address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import random
import socket
import statistics
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from lab.state import LabNetwork
from lab.traffic import link_usable

log = logging.getLogger(__name__)

ECHO_PORT = 7
MAX_PAYLOAD = 2048
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; Python 3.11 does not export it
_PKTINFO = struct.Struct("=I4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_SIGMA_PER_JITTER = math.sqrt(math.pi) / 2.0
READS_PER_WAKEUP = 256

Address = tuple[str, int]
Sender = Callable[[bytes, Address, str], None]


@dataclass
class ProbeStats:
    received: int = 0
    replied: int = 0
    lost: int = 0  # dropped on purpose: the link's loss
    silent: int = 0  # not answered: the link is unusable (cut, down, muted, powered off)
    overload: int = 0  # dropped: too many replies waiting
    unknown: int = 0  # sent to an address that is no probe target
    send_errors: int = 0


class ProbeResponder:
    """Answers UDP echo on every link's probe address; ``start()`` binds, ``close()`` stops."""

    def __init__(
        self,
        net: LabNetwork,
        *,
        port: int = ECHO_PORT,
        max_pending: int = 20_000,
        rng: random.Random | None = None,
        shared_socket: bool | None = None,
    ) -> None:
        self.net = net
        self.port = port
        self.max_pending = max_pending
        self.rng = rng or random.Random()
        self.shared_socket = shared_socket
        self.stats = ProbeStats()
        self.pending = 0
        self.addresses: list[str] = []
        self.failed: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shared: socket.socket | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self._timers: set[asyncio.TimerHandle] = set()

    @property
    def sockets(self) -> int:
        return len(self._transports) + (1 if self._shared is not None else 0)

    async def start(self, addresses: Iterable[str] | None = None) -> None:
        """Bind the probe addresses (all links' by default)."""
        self._loop = asyncio.get_running_loop()
        wanted = sorted(set(addresses) if addresses is not None else set(self.net.by_probe_address))
        self.addresses = wanted
        shared = self.shared_socket
        if shared is None:
            shared = (
                bool(wanted)
                and all(ipaddress.IPv4Address(a).is_loopback for a in wanted)
                and hasattr(socket.socket, "recvmsg")
            )
        if shared:
            self._start_shared()
        else:
            await self._start_per_address(wanted)

    def _start_shared(self) -> None:
        assert self._loop is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind(("0.0.0.0", self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._shared = sock
        self._loop.add_reader(sock.fileno(), self._read_shared)
        log.info(
            "probe responder: one socket on port %d for %d links", self.port, len(self.addresses)
        )

    def _read_shared(self) -> None:
        sock = self._shared
        if sock is None:
            return
        for _ in range(READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, src = sock.recvmsg(
                    MAX_PAYLOAD, socket.CMSG_SPACE(_PKTINFO.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("probe responder: receive failed: %s", err)
                return
            dst = None
            for level, kind, payload in ancdata:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    _ifindex, _spec, addr = _PKTINFO.unpack_from(payload)
                    dst = socket.inet_ntoa(addr)
            if dst is not None:
                self._on_probe(data, src, dst, self._send_shared)

    def _send_shared(self, data: bytes, dst: Address, source: str) -> None:
        sock = self._shared
        if sock is None:
            return
        info = _PKTINFO.pack(0, socket.inet_aton(source), b"\0\0\0\0")
        try:
            sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, dst)
        except OSError:
            self.stats.send_errors += 1
            return
        self.stats.replied += 1

    async def _start_per_address(self, addresses: list[str]) -> None:
        assert self._loop is not None
        loop = self._loop
        for address in addresses:
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda a=address: _EchoProtocol(self, a),  # type: ignore[misc]
                    local_addr=(address, self.port),
                )
            except OSError as err:
                self.failed[address] = str(err)
                log.warning("probe responder: cannot bind %s:%d: %s", address, self.port, err)
                continue
            self._transports.append(transport)
        log.info(
            "probe responder: %d sockets on port %d (%d failed)",
            len(self._transports),
            self.port,
            len(self.failed),
        )

    def _on_probe(self, data: bytes, src: Address, dst: str, send: Sender) -> None:
        self.stats.received += 1
        link = self.net.by_probe_address.get(dst)
        if link is None:
            self.stats.unknown += 1
            return
        if not link_usable(self.net, link):
            self.stats.silent += 1
            return
        loss, latency_ms, jitter_ms = link.effective()
        if loss > 0.0 and self.rng.random() < loss:
            self.stats.lost += 1
            return
        if self.pending >= self.max_pending:
            self.stats.overload += 1
            return
        delay_ms = latency_ms
        if jitter_ms > 0.0:
            delay_ms += self.rng.gauss(0.0, jitter_ms * _SIGMA_PER_JITTER)
        assert self._loop is not None
        self.pending += 1
        handle: asyncio.TimerHandle | None = None

        def reply() -> None:
            self.pending -= 1
            if handle is not None:
                self._timers.discard(handle)
            if link_usable(self.net, link):
                send(data, src, dst)
            else:
                self.stats.silent += 1

        handle = self._loop.call_later(max(0.0, delay_ms) / 1000.0, reply)
        self._timers.add(handle)

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.pending = 0
        if self._shared is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._shared.fileno())
            self._shared.close()
            self._shared = None
        for transport in self._transports:
            transport.close()
        self._transports.clear()


class _EchoProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: ProbeResponder, address: str) -> None:
        self.responder = responder
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.responder._on_probe(data, addr, self.address, self._send)

    def _send(self, data: bytes, dst: Address, source: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.sendto(data, dst)
        self.responder.stats.replied += 1


async def serve_probes(
    net: LabNetwork,
    *,
    port: int = ECHO_PORT,
    max_pending: int = 20_000,
    seed: int | None = None,
    shared_socket: bool | None = None,
) -> ProbeResponder:
    """Start answering probes on every link of ``net``."""
    responder = ProbeResponder(
        net,
        port=port,
        max_pending=max_pending,
        rng=random.Random(seed),
        shared_socket=shared_socket,
    )
    await responder.start()
    return responder


# ---- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeBench:
    sent: int
    replies: int
    lost: int  # no reply within the timeout
    duration_s: float
    rps: float  # replies per second received during ``duration``
    rtt_p50_ms: float
    rtt_p95_ms: float


class _Prober(asyncio.DatagramProtocol):
    def __init__(self, on_reply: Callable[[bytes], None]) -> None:
        self.on_reply = on_reply

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_reply(data)


async def measure_probe_rps(
    addresses: Iterable[str],
    *,
    port: int = ECHO_PORT,
    duration: float = 5.0,
    window: int = 2_000,
    timeout: float = 2.0,
    payload_bytes: int = 64,
) -> ProbeBench:
    """Keep ``window`` probes in flight round-robin over ``addresses`` for ``duration`` s.

    The figure is replies per second; with links of latency L it cannot exceed window / L, so
    measure on links with small latency (or a large window) to see the responder's own limit.
    """
    targets = list(addresses)
    if not targets:
        raise ValueError("measure_probe_rps needs at least one address")
    loop = asyncio.get_running_loop()
    outstanding: dict[int, float] = {}
    rtts: list[float] = []
    counters = {"sent": 0, "replies": 0, "lost": 0}
    pad = b"\0" * max(0, payload_bytes - 8)
    seq = 0
    transport: asyncio.DatagramTransport | None = None
    stop_at = loop.time() + duration
    in_window = 0

    def send_one() -> None:
        nonlocal seq
        if transport is None or loop.time() >= stop_at:
            return
        seq += 1
        outstanding[seq] = time.monotonic()
        transport.sendto(seq.to_bytes(8, "big") + pad, (targets[seq % len(targets)], port))
        counters["sent"] += 1

    def on_reply(data: bytes) -> None:
        nonlocal in_window
        if len(data) < 8:
            return
        sent_at = outstanding.pop(int.from_bytes(data[:8], "big"), None)
        if sent_at is None:
            return
        rtts.append((time.monotonic() - sent_at) * 1000.0)
        counters["replies"] += 1
        if loop.time() < stop_at:
            in_window += 1
        send_one()

    transport_, _ = await loop.create_datagram_endpoint(
        lambda: _Prober(on_reply), local_addr=("127.0.0.1", 0)
    )
    transport = transport_
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    started = loop.time()
    try:
        for _ in range(window):
            send_one()
        while loop.time() < stop_at + timeout:
            await asyncio.sleep(min(0.1, timeout / 4))
            now = time.monotonic()
            expired = [s for s, t in outstanding.items() if now - t > timeout]
            for s in expired:
                del outstanding[s]
                counters["lost"] += 1
                send_one()
            if loop.time() >= stop_at and not outstanding:
                break
    finally:
        transport.close()
    elapsed = min(loop.time(), stop_at) - started
    rtts.sort()
    return ProbeBench(
        sent=counters["sent"],
        replies=counters["replies"],
        lost=counters["lost"] + len(outstanding),
        duration_s=elapsed,
        rps=in_window / elapsed if elapsed > 0 else 0.0,
        rtt_p50_ms=statistics.median(rtts) if rtts else 0.0,
        rtt_p95_ms=rtts[min(len(rtts) - 1, int(0.95 * len(rtts)))] if rtts else 0.0,
    )
