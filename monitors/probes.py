"""Active link probes: UDP echo to every link's far end, loss/RTT/jitter over a sliding window.

One :class:`ProbeEngine` probes every link from ONE non-blocking UDP socket:

- each link is probed every ``interval_s`` (default 1 s); its first probe is placed at a random
  phase of the interval and every following gap is drawn from ``interval * [1 - jitter,
  1 + jitter]``, so 5,000 links spread evenly over the second instead of firing together;
- a probe is a datagram to ``probe_address:port`` (RFC 862 echo, port 7 by default) carrying a
  magic, a per-engine nonce, the link's slot, a sequence number and the send time (monotonic
  ns). The far end sends it back unchanged; a reply counts only if its payload matches a probe
  still waiting AND it comes from that link's address and port. No reply within ``timeout_s``
  (default 2 s, above any healthy satellite RTT) is a loss; a reply after that is counted late
  and ignored;
- per link, the probe results of the last ``window_s`` (default 30 s; a result is a reply, or a
  loss when the timeout expires) make a :class:`~monitors.linkstate.LinkQuality`: loss %, mean
  RTT of the answered probes, and jitter as the mean absolute difference of consecutive RTTs in
  the order the replies arrive (RFC 3550). Running sums are kept as results come and go, so a
  reading costs the same whatever the window holds. The loss over the last ``recent_probes``
  results (default 5) is kept apart: it is what detects a cut within seconds
  (``monitors.health``). Readings are taken on the engine's loop only;
- every ``write_every_s`` (default 10 s) per link, one ``link_probe`` sample (``docs/metrics.md``)
  goes to the metric sink — not one per probe. Writes go through a bounded queue to one writer
  task, so a slow sink never delays probing; points that do not fit are counted
  (``dropped_points``) and logged.

The scheduler is one task that wakes every ``tick_s`` (default 10 ms), sends what is due and
expires what timed out (a deque in send order, since the timeout is the same for all); replies
are read by a reader callback on the socket that drains up to 256 datagrams per wake-up.

Why not ICMP echo: sending ICMP needs a raw socket (root or CAP_NET_RAW; Linux's unprivileged
ICMP sockets depend on ``net.ipv4.ping_group_range``), and the lab — whose link far ends live on
127.0.0.0/8 — cannot shape ICMP at all: the kernel answers ICMP echo for loopback addresses
itself, at once and without loss (``lab/probes.py``). UDP echo works unprivileged, measures the
same path, and the lab answers it with each link's simulated loss/latency/jitter. On the real
network, routers answer UDP echo with ``service udp-small-servers`` (IOS) or an IP SLA
responder; a site that only answers ICMP needs a small echo responder at the far end.

Scale, measured on the 2-core development machine (shared with other work, load ~4) against
the national lab (4,614 links, every 1 s, in a process of its own with health evaluation and
alarms): ~0.25 CPU-second per second, event-loop lag p50 ~1 ms / p99 ~15 ms — so 5,000 links
at 1 s fit in one process with room to spare, provided nothing CPU-heavy shares its event loop
(a poll round of pysnmp v3 in the same loop added ~50 ms p50 lag and inflated every RTT; that
is why ``tiandi poll`` runs the poller and the prober as separate processes). Two things
mattered: cyclic-GC full collections stalled the loop 100-500 ms until the long-lived objects
were frozen (``gc.freeze()`` after start-up, in the composition root), and per-reading window
scans cost ~40 µs per link until they became running sums. Where the prober must share a core
with the poller (``tiandi poll --single-process``), raise ``--probe-interval`` to 2-5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import logging
import os
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from monitors.health import ProbeReading
from monitors.linkstate import LinkQuality
from monitors.sinks.base import FieldValue, MetricSink, Sample

log = logging.getLogger(__name__)

ECHO_PORT: Final = 7
MEASUREMENT: Final = "link_probe"
_MAGIC: Final = b"TDP1"
_HEADER: Final = struct.Struct("!4sIIIQ")  # magic, nonce, slot, seq, sent monotonic ns
_LOST: Final = -1
_READS_PER_WAKEUP: Final = 256
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One link to probe, with the tags its samples carry."""

    link: str
    site: str
    role: str
    address: str
    province: str | None = None
    port: int | None = None  # None: the engine's port


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    interval_s: float = 1.0
    jitter: float = 0.1  # each gap is interval * [1 - jitter, 1 + jitter]
    timeout_s: float = 2.0
    window_s: float = 30.0
    recent_probes: int = 5
    write_every_s: float = 10.0
    port: int = ECHO_PORT
    payload_bytes: int = 64
    bind_address: str = "0.0.0.0"
    tick_s: float = 0.01
    receive_buffer: int = 4 * 1024 * 1024
    write_queue: int = 64  # batches waiting for the sink

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.timeout_s <= 0 or self.window_s <= 0:
            raise ValueError("interval_s, timeout_s and window_s must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.recent_probes < 1:
            raise ValueError("recent_probes must be at least 1")
        if self.payload_bytes < _HEADER.size:
            raise ValueError(f"payload_bytes must be at least {_HEADER.size}")


@dataclass(slots=True)
class ProbeStats:
    links: int = 0
    sent: int = 0
    replies: int = 0
    lost: int = 0
    late: int = 0  # replies after the timeout (already counted lost), or duplicates
    unmatched: int = 0  # datagrams that match no waiting probe, or from the wrong address
    send_errors: int = 0  # our side could not send (socket buffer full): not counted as loss
    written_points: int = 0
    write_errors: int = 0
    dropped_points: int = 0  # samples not handed to the sink (write queue full)
    max_tick_lag_ms: float = 0.0  # worst lateness of the scheduler since start
    last_error: str | None = None


class _Link:
    """Probe state of one link: probes waiting for an answer, and the results of the window
    with running sums, so that a reading costs O(recent) whatever the window holds. Only the
    engine's loop may touch it (a reading trims the window)."""

    __slots__ = (
        "dest",
        "jitter_n",
        "jitter_sum",
        "last_result_ns",
        "last_rtt",
        "lost",
        "next_write_ns",
        "pending",
        "results",
        "rtt_sum",
        "samples",
        "seq",
        "slot",
        "target",
    )

    def __init__(self, slot: int, target: ProbeTarget, port: int) -> None:
        self.slot = slot
        self.target = target
        self.dest = (target.address, target.port or port)
        self.seq = 0
        self.pending: dict[int, int] = {}  # seq -> sent monotonic ns
        # (resolved ns, rtt ns or _LOST, |rtt - previous rtt| ns or -1), oldest first
        self.results: deque[tuple[int, int, int]] = deque()
        self.samples = self.lost = self.rtt_sum = self.jitter_sum = self.jitter_n = 0
        self.last_rtt = -1
        self.last_result_ns: int | None = None
        self.next_write_ns = 0

    def resolve(self, now_ns: int, rtt_ns: int) -> None:
        """A probe's result: its RTT, or ``_LOST``. Jitter compares consecutive answers in the
        order they arrive (RFC 3550); a loss does not break the chain."""
        jitter = -1
        if rtt_ns == _LOST:
            self.lost += 1
        else:
            self.rtt_sum += rtt_ns
            if self.last_rtt >= 0:
                jitter = abs(rtt_ns - self.last_rtt)
                self.jitter_sum += jitter
                self.jitter_n += 1
            self.last_rtt = rtt_ns
        self.samples += 1
        self.results.append((now_ns, rtt_ns, jitter))
        self.last_result_ns = now_ns

    def trim(self, before_ns: int) -> None:
        results = self.results
        while results and results[0][0] < before_ns:
            _, rtt, jitter = results.popleft()
            self.samples -= 1
            if rtt == _LOST:
                self.lost -= 1
            else:
                self.rtt_sum -= rtt
            if jitter >= 0:
                self.jitter_sum -= jitter
                self.jitter_n -= 1

    def reading(self, now_ns: int, window_ns: int, recent: int) -> ProbeReading | None:
        if self.last_result_ns is None:
            return None
        self.trim(now_ns - window_ns)
        samples, lost = self.samples, self.lost
        answered = samples - lost
        quality = LinkQuality(
            loss_pct=100.0 * lost / samples if samples else 0.0,
            rtt_ms=self.rtt_sum / answered / 1e6 if answered else None,
            jitter_ms=self.jitter_sum / self.jitter_n / 1e6 if self.jitter_n else None,
            samples=samples,
        )
        seen = recent_lost = 0
        for _at, rtt, _jitter in reversed(self.results):
            seen += 1
            recent_lost += rtt == _LOST
            if seen >= recent:
                break
        return ProbeReading(
            quality=quality,
            recent_loss_pct=100.0 * recent_lost / seen if seen else None,
            at=self.last_result_ns / _NS,
        )


class ProbeEngine:
    """Probes every target; ``start()`` opens the socket and the tasks, ``close()`` ends them."""

    def __init__(
        self,
        config: ProbeConfig | None = None,
        *,
        sink: MetricSink | None = None,
        targets: Iterable[ProbeTarget] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or ProbeConfig()
        self.sink = sink
        self.stats = ProbeStats()
        self._rng = rng or random.Random()
        self._nonce = int.from_bytes(os.urandom(4), "big")
        self._slots: list[_Link | None] = []
        self._by_name: dict[str, _Link] = {}
        self._due: list[tuple[int, int]] = []  # (due monotonic ns, slot)
        self._timeouts: deque[tuple[int, _Link, int]] = deque()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: asyncio.Queue[list[Sample]] | None = None
        self._pad = b"\0" * (self.config.payload_bytes - _HEADER.size)
        self._window_ns = int(self.config.window_s * _NS)
        self._timeout_ns = int(self.config.timeout_s * _NS)
        self._interval_ns = int(self.config.interval_s * _NS)
        self._write_ns = int(self.config.write_every_s * _NS)
        self._pending_targets: list[ProbeTarget] | None = list(targets)

    def __repr__(self) -> str:
        return f"ProbeEngine({len(self._by_name)} links, every {self.config.interval_s:g} s)"

    # ---- targets ---------------------------------------------------------------------------

    def set_targets(self, targets: Iterable[ProbeTarget]) -> None:
        """Probe exactly these links from now on (the inventory changed). A link whose address
        or tags changed starts a fresh window; the others keep theirs."""
        wanted = {t.link: t for t in targets}
        if self._loop is None:
            self._pending_targets = list(wanted.values())
            return
        now = time.monotonic_ns()
        for name, link in list(self._by_name.items()):
            if wanted.get(name) != link.target:
                del self._by_name[name]
                self._slots[link.slot] = None
        for name, target in wanted.items():
            if name not in self._by_name:
                self._add(target, now)
        self.stats.links = len(self._by_name)

    def _add(self, target: ProbeTarget, now_ns: int) -> None:
        slot = len(self._slots)  # slots are never reused: a late reply cannot reach a new link
        link = _Link(slot, target, self.config.port)
        self._slots.append(link)
        self._by_name[target.link] = link
        phase = int(self._rng.random() * self._interval_ns)
        link.next_write_ns = now_ns + self._write_ns + int(self._rng.random() * self._write_ns)
        heapq.heappush(self._due, (now_ns + phase, slot))

    def targets(self) -> list[ProbeTarget]:
        return [link.target for link in self._by_name.values()]

    # ---- reading ---------------------------------------------------------------------------

    def reading(self, link: str) -> ProbeReading | None:
        """Window statistics of ``link`` now; None if it has no probe result yet (or is not
        probed)."""
        entry = self._by_name.get(link)
        if entry is None:
            return None
        return entry.reading(time.monotonic_ns(), self._window_ns, self.config.recent_probes)

    def quality(self, link: str) -> LinkQuality | None:
        found = self.reading(link)
        return found.quality if found is not None else None

    def readings(self) -> dict[str, ProbeReading | None]:
        now = time.monotonic_ns()
        window, recent = self._window_ns, self.config.recent_probes
        return {name: link.reading(now, window, recent) for name, link in self._by_name.items()}

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.receive_buffer)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.receive_buffer)
            sock.bind((self.config.bind_address, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._on_readable)
        targets, self._pending_targets = self._pending_targets or [], None
        self.set_targets(targets)
        self._tasks.append(loop.create_task(self._schedule(), name="probe-scheduler"))
        if self.sink is not None:
            self._queue = asyncio.Queue(self.config.write_queue)
            self._tasks.append(loop.create_task(self._writer(), name="probe-writer"))
        log.info(
            "probes: %d links every %g s from %s:%d",
            len(self._by_name),
            self.config.interval_s,
            *sock.getsockname()[:2],
        )

    async def close(self) -> None:
        """Stop probing; hand the samples already queued to the sink first."""
        for task in self._tasks[:1]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue is not None and len(self._tasks) > 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=5.0)
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._loop = None

    # ---- sending and timing out ----------------------------------------------------------

    async def _schedule(self) -> None:
        tick = self.config.tick_s
        tick_ns = int(tick * _NS)
        next_write_scan = time.monotonic_ns()
        while True:
            now = time.monotonic_ns()
            self._send_due(now)
            self._expire(now)
            if self._queue is not None and now >= next_write_scan:
                self._queue_samples(now)
                next_write_scan = now + min(_NS, self._write_ns)
            wake = now + tick_ns
            await asyncio.sleep(tick)
            lag_ms = (time.monotonic_ns() - wake) / 1e6
            if lag_ms > self.stats.max_tick_lag_ms:
                self.stats.max_tick_lag_ms = lag_ms

    def _send_due(self, now: int) -> None:
        due = self._due
        sock = self._sock
        if sock is None:
            return
        interval = self._interval_ns
        spread = self.config.jitter
        rng = self._rng.random
        timeout = self._timeout_ns
        while due and due[0][0] <= now:
            at, slot = heapq.heappop(due)
            link = self._slots[slot]
            if link is None:  # removed from the targets
                continue
            self._send(sock, link, now, timeout)
            nxt = at + int(interval * (1.0 + spread * (2.0 * rng() - 1.0)))
            if nxt < now - interval:  # far behind (overload, or a stopped clock): re-phase
                nxt = now + int(rng() * interval)
            heapq.heappush(due, (nxt, slot))

    def _send(self, sock: socket.socket, link: _Link, now: int, timeout: int) -> None:
        seq = link.seq & 0xFFFFFFFF
        payload = _HEADER.pack(_MAGIC, self._nonce, link.slot, seq, now) + self._pad
        try:
            sock.sendto(payload, link.dest)
        except (BlockingIOError, InterruptedError) as err:
            self.stats.send_errors += 1
            self.stats.last_error = f"send to {link.dest[0]}: {err}"
            return
        except OSError as err:
            if err.errno == errno.ENOBUFS:  # our side: not the link's loss
                self.stats.send_errors += 1
                return
            # no route, network unreachable...: the far end cannot be reached, a loss
            self.stats.sent += 1
            self.stats.lost += 1
            link.seq += 1
            link.resolve(now, _LOST)
            return
        self.stats.sent += 1
        link.seq += 1
        link.pending[seq] = now
        self._timeouts.append((now + timeout, link, seq))

    def _expire(self, now: int) -> None:
        timeouts = self._timeouts
        while timeouts and timeouts[0][0] <= now:
            _, link, seq = timeouts.popleft()
            if link.pending.pop(seq, None) is not None:
                link.resolve(now, _LOST)
                self.stats.lost += 1

    # ---- receiving -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. an ICMP error reported on the socket
                self.stats.last_error = f"receive: {err}"
                continue
            self._on_reply(data, source, time.monotonic_ns())

    def _on_reply(self, data: bytes, source: tuple[str, int], now: int) -> None:
        if len(data) < _HEADER.size:
            self.stats.unmatched += 1
            return
        magic, nonce, slot, seq, sent_ns = _HEADER.unpack_from(data)
        link = self._slots[slot] if magic == _MAGIC and slot < len(self._slots) else None
        if link is None or nonce != self._nonce or source[:2] != link.dest:
            self.stats.unmatched += 1
            return
        sent = link.pending.pop(seq, None)
        if sent is None:
            if seq < link.seq:
                self.stats.late += 1  # timed out already (or a duplicate)
            else:
                self.stats.unmatched += 1
            return
        if sent != sent_ns:  # not the probe we sent with that number
            link.pending[seq] = sent
            self.stats.unmatched += 1
            return
        link.resolve(now, now - sent)
        self.stats.replies += 1

    # ---- samples to the sink ---------------------------------------------------------------

    def _queue_samples(self, now: int) -> None:
        assert self._queue is not None
        wall = time.time_ns()
        batch: list[Sample] = []
        window, recent, every = self._window_ns, self.config.recent_probes, self._write_ns
        for link in self._by_name.values():
            if link.next_write_ns > now:
                continue
            link.next_write_ns += every
            if link.next_write_ns <= now:
                link.next_write_ns = now + every
            found = link.reading(now, window, recent)
            if found is None or found.quality.samples == 0:
                continue
            batch.append(probe_sample(link.target, found.quality, wall))
        if not batch:
            return
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.stats.dropped_points += len(batch)
            log.error(
                "probes: the metric sink is not keeping up; %d link_probe point(s) dropped "
                "(%d so far)",
                len(batch),
                self.stats.dropped_points,
            )

    async def _writer(self) -> None:
        assert self._queue is not None and self.sink is not None
        while True:
            batch = await self._queue.get()
            try:
                await self.sink.write(batch)
                self.stats.written_points += len(batch)
            except Exception as err:  # recorded: counted, kept as last_error, logged
                self.stats.write_errors += 1
                self.stats.dropped_points += len(batch)
                self.stats.last_error = f"sink: {err}"
                log.error("probes: writing %d link_probe point(s) failed: %s", len(batch), err)
            finally:
                self._queue.task_done()


def probe_sample(target: ProbeTarget, quality: LinkQuality, time_ns: int) -> Sample:
    """The ``link_probe`` point of ``docs/metrics.md`` for one link's window."""
    fields: dict[str, FieldValue] = {"loss_pct": float(quality.loss_pct), "probes": quality.samples}
    if quality.rtt_ms is not None:
        fields["rtt_ms"] = float(quality.rtt_ms)
    if quality.jitter_ms is not None:
        fields["jitter_ms"] = float(quality.jitter_ms)
    tags = {"link": target.link, "site": target.site, "role": target.role}
    if target.province:
        tags["province"] = target.province
    return Sample(MEASUREMENT, tags, fields, time_ns)
