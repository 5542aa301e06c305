"""Never lose a point to a store outage: an on-disk spool, replayed in order.

:class:`SpoolingSink` sits in front of a :class:`~monitors.sinks.base.LineProtocolSink` (InfluxDB
v1 or v2). It serialises each batch once, then one sender task delivers batches strictly in the
order they were written:

- while the store answers, a batch goes straight to it;
- when a write fails with a retryable error (server down, timeout, 5xx, 429), that batch and every
  later one are appended to the :class:`Spool` on disk — later batches too, so that order holds;
- the sender retries the oldest spooled batch with exponential backoff (honouring ``Retry-After``)
  and, once the store takes it, removes it and goes on with the next, until the spool is empty;
  then batches go straight to the store again;
- an answer that can never succeed as sent (400 bad line protocol, 404 unknown database, 401/403,
  413) does not loop: the batch moves to the spool's dead-letter segments (counted, logged at
  ERROR with the reason, kept on disk for a person to inspect) and delivery goes on.

Delivery guarantee — at least once, in order, and no duplicate data. A spooled batch is removed
only after the store acknowledged it (HTTP 204). If the process dies between that acknowledgement
and the removal being recorded, the batch is sent again after the restart. That second copy does
not duplicate anything: InfluxDB keeps one value per series (measurement + tag set), field and
timestamp, and a point written again with the same timestamp overwrites the first with identical
values (``tests/monitors/test_spool.py`` proves it against a real ``influxd``). The alternative,
at-most-once (remove before sending), would lose the batch in that same crash, so it was not chosen.

On-disk layout (``directory``)::

    pending/0000000000000001.seg   append-only segment files, oldest first
    pending/cursor                 "<segment> <offset>": first batch not yet acknowledged
    dead/0000000000000001.seg      dead-letter segments, same format
    dead/reasons.log               one line per dead-lettered batch: time, points, reason

A segment is a sequence of records: a 16-byte header (magic ``TDSP``, body length, point count,
CRC-32 of the body; little-endian) followed by the body (line protocol). A torn or corrupt record
at the end of a segment (a crash mid-append) is cut off when the spool is opened, with a WARNING.

Bounds: the pending segments together stay under ``max_bytes``. To make room, whole oldest segments
are deleted; the points in them are counted in ``dropped_points`` and logged at ERROR (the alarm).
Dead-letter segments have their own bound, ``dead_letter_max_bytes``, with the same rule.

fsync policy: with ``fsync=True`` (the default) every appended batch is fsync'ed before the write
returns, and the cursor file is replaced atomically (write, fsync, rename, fsync the directory)
after each acknowledged batch, so a power loss loses no acknowledged write and replays at most the
batch in flight. With ``fsync=False`` the OS page cache decides: a crash of the Tiandi process
still loses nothing, a crash of the machine can lose the last seconds of spooled points. Either
way this only costs anything during an outage or a replay; normal delivery does not touch the disk.

All disk I/O runs in a worker thread (``asyncio.to_thread``); :class:`Spool` itself is synchronous
and thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, Literal

from monitors.errors import MetricsWriteError
from monitors.sinks.base import LineProtocolSink, Sample
from monitors.sinks.lineprotocol import LineEncoder, log_skipped

logger = logging.getLogger(__name__)

_HEADER: Final = struct.Struct("<4sIII")
# How long ``write`` waits at most for the sender to get its next request onto the wire.
_WIRE_WAIT_S: Final = 0.5
_MAGIC: Final = b"TDSP"
_SUFFIX: Final = ".seg"
_MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch in the spool: where it is and what it holds."""

    segment: int
    offset: int
    body: bytes
    points: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool holds now and what it did since this process opened it.

    ``pending_*`` and ``dead_letter_*`` describe the files on disk (they survive a restart);
    ``spooled_points``, ``replayed_points`` and ``dropped_*`` count since the process started.
    """

    pending_batches: int
    pending_points: int
    pending_bytes: int
    spooled_points: int
    replayed_points: int
    dropped_points: int
    dropped_batches: int
    dead_letter_batches: int
    dead_letter_points: int
    dead_letter_bytes: int
    max_bytes: int


@dataclass(slots=True)
class _Record:
    offset: int
    length: int  # header + body
    points: int


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int
    records: deque[_Record] = field(default_factory=deque)

    @property
    def points(self) -> int:
        return sum(r.points for r in self.records)


class _SegmentLog:
    """An ordered set of append-only segment files in one directory, with a byte bound."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int, fsync: bool) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.segments: deque[_Segment] = deque()
        self.handle: BinaryIO | None = None  # open on the last segment, for appending
        self.next_seq = 1  # never reused, so a stale cursor cannot point into a new segment
        # running totals (kept, not recomputed: a spool can hold 100,000 small batches)
        self.total_bytes = 0
        self.batches = 0
        self.points = 0
        directory.mkdir(parents=True, exist_ok=True)

    # ---- opening ----------------------------------------------------------------------------

    def load(self, first_seq: int = 0, first_offset: int = 0) -> None:
        """Read every segment; skip what lies before (first_seq, first_offset)."""
        paths = sorted(self.directory.glob(f"*{_SUFFIX}"))
        self.next_seq = max(first_seq, 1)
        for path in paths:
            try:
                seq = int(path.stem)
            except ValueError:
                logger.warning("spool: ignoring unexpected file %s", path)
                continue
            self.next_seq = max(self.next_seq, seq + 1)
            if seq < first_seq:
                path.unlink(missing_ok=True)  # fully acknowledged before a crash
                continue
            segment = self._scan(path, seq)
            start = first_offset if seq == first_seq else 0
            while segment.records and segment.records[0].offset < start:
                segment.records.popleft()
            if segment.records:
                self.segments.append(segment)
                self.total_bytes += segment.size
                self.batches += len(segment.records)
                self.points += segment.points
            else:
                path.unlink(missing_ok=True)

    def _scan(self, path: Path, seq: int) -> _Segment:
        segment = _Segment(seq, path, 0)
        with path.open("rb") as handle:
            data = handle.read()
        offset = 0
        while offset < len(data):
            header = data[offset : offset + _HEADER.size]
            problem = None
            if len(header) < _HEADER.size:
                problem = "a truncated record header"
            else:
                magic, length, points, crc = _HEADER.unpack(header)
                body = data[offset + _HEADER.size : offset + _HEADER.size + length]
                if magic != _MAGIC:
                    problem = "a record with a bad magic number"
                elif len(body) < length:
                    problem = "a truncated record"
                elif zlib.crc32(body) != crc:
                    problem = "a record whose checksum does not match"
            if problem is not None:
                logger.warning(
                    "spool: %s at byte %d of %s (a crash while appending?); cutting off the "
                    "%d byte(s) from there — the batch in them is lost",
                    problem,
                    offset,
                    path,
                    len(data) - offset,
                )
                with path.open("r+b") as handle:
                    handle.truncate(offset)
                break
            segment.records.append(_Record(offset, _HEADER.size + length, points))
            offset += _HEADER.size + length
        segment.size = offset
        return segment

    # ---- appending ----------------------------------------------------------------------------

    def append(self, body: bytes, points: int) -> None:
        size = _HEADER.size + len(body)
        last = self.segments[-1] if self.segments else None
        if last is None or self.handle is None or last.size + size > self.segment_bytes:
            self._rotate()
            last = self.segments[-1]
        handle = self.handle
        assert handle is not None
        handle.write(_HEADER.pack(_MAGIC, len(body), points, zlib.crc32(body)))
        handle.write(body)
        handle.flush()
        if self.fsync:
            os.fsync(handle.fileno())
        last.records.append(_Record(last.size, size, points))
        last.size += size
        self.total_bytes += size
        self.batches += 1
        self.points += points

    def _rotate(self) -> None:
        self._close_handle()
        seq = self.next_seq
        self.next_seq += 1
        path = self.directory / f"{seq:016d}{_SUFFIX}"
        self.handle = path.open("ab")
        self.segments.append(_Segment(seq, path, 0))
        if self.fsync:
            _fsync_dir(self.directory)

    def _close_handle(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def drop_oldest(self) -> _Segment:
        segment = self.segments.popleft()
        if not self.segments:
            self._close_handle()
        self.total_bytes -= segment.size
        self.batches -= len(segment.records)
        self.points -= segment.points
        segment.path.unlink(missing_ok=True)
        return segment

    def pop_head(self) -> _Segment | None:
        """Forget the oldest record. If that empties its segment, the segment leaves the log and
        is returned, for the caller to delete its file once the cursor is recorded."""
        head = self.segments[0]
        record = head.records.popleft()
        self.batches -= 1
        self.points -= record.points
        if head.records:
            return None
        self.segments.popleft()
        if not self.segments:
            self._close_handle()
        self.total_bytes -= head.size
        return head

    def close(self) -> None:
        self._close_handle()


def _human_bytes(size: int) -> str:
    if size >= _MIB:
        return f"{size / _MIB:.1f} MiB"
    return f"{size} bytes"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Batches of line protocol on disk, oldest first, bounded in bytes. Thread-safe."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 256 * _MIB,
        segment_bytes: int = 8 * _MIB,
        dead_letter_max_bytes: int = 64 * _MIB,
        fsync: bool = True,
    ) -> None:
        if segment_bytes > max_bytes:
            segment_bytes = max_bytes
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pending = _SegmentLog(
            self.directory / "pending",
            max_bytes=max_bytes,
            segment_bytes=segment_bytes,
            fsync=fsync,
        )
        self._dead = _SegmentLog(
            self.directory / "dead",
            max_bytes=dead_letter_max_bytes,
            segment_bytes=min(segment_bytes, dead_letter_max_bytes),
            fsync=fsync,
        )
        self._fsync = fsync
        self._cursor_path = self._pending.directory / "cursor"
        self.spooled_points = 0
        self.replayed_points = 0
        self.dropped_points = 0
        self.dropped_batches = 0
        seq, offset = self._read_cursor()
        self._pending.load(seq, offset)
        self._dead.load()
        self._counts = (self._pending.batches, self._pending.points, self._pending.total_bytes)
        self._dead_counts = (self._dead.batches, self._dead.points, self._dead.total_bytes)
        if self._counts[0]:
            logger.warning(
                "spool %s holds %d point(s) in %d batch(es) from before; they are replayed first",
                self.directory,
                self._counts[1],
                self._counts[0],
            )

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # ---- cursor ------------------------------------------------------------------------------

    def _read_cursor(self) -> tuple[int, int]:
        try:
            text = self._cursor_path.read_text(encoding="ascii").split()
            return int(text[0]), int(text[1])
        except (OSError, ValueError, IndexError):
            return 0, 0

    def _write_cursor(self) -> None:
        head = self._pending.segments[0] if self._pending.segments else None
        if head is None:
            seq, position = self._pending.next_seq, 0
        else:
            seq = head.seq
            position = head.records[0].offset if head.records else head.size
        tmp = self._cursor_path.with_suffix(".tmp")
        with tmp.open("w", encoding="ascii") as handle:
            handle.write(f"{seq} {position}\n")
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, self._cursor_path)
        if self._fsync:
            _fsync_dir(self._cursor_path.parent)

    def _refresh_counts(self) -> None:
        self._counts = (self._pending.batches, self._pending.points, self._pending.total_bytes)
        self._dead_counts = (self._dead.batches, self._dead.points, self._dead.total_bytes)

    # ---- operations --------------------------------------------------------------------------

    def append(self, body: bytes, points: int) -> None:
        """Add a batch at the tail; drop oldest segments if the spool would outgrow its bound."""
        with self._lock:
            self._append(self._pending, body, points, what="spool")
            self.spooled_points += points
            self._refresh_counts()

    def _append(self, log: _SegmentLog, body: bytes, points: int, *, what: str) -> None:
        size = _HEADER.size + len(body)
        if size > log.max_bytes:
            self.dropped_points += points
            self.dropped_batches += 1
            logger.error(
                "%s %s is too small for one batch of %d byte(s) (bound %d): dropped its %d "
                "point(s) — raise the spool's max_bytes or lower the batch size",
                what,
                log.directory,
                size,
                log.max_bytes,
                points,
            )
            return
        while log.segments and log.total_bytes + size > log.max_bytes:
            segment = log.drop_oldest()
            dropped_points, dropped_batches = segment.points, len(segment.records)
            self.dropped_points += dropped_points
            self.dropped_batches += dropped_batches
            logger.error(
                "%s %s is full (bound %s): dropped the oldest %d point(s) in %d batch(es) "
                "to make room — %d point(s) dropped since start; the store has been failing "
                "for too long, or the bound is too small",
                what,
                log.directory,
                _human_bytes(log.max_bytes),
                dropped_points,
                dropped_batches,
                self.dropped_points,
            )
            if log is self._pending:
                self._write_cursor()
        log.append(body, points)

    def peek(self) -> SpooledBatch | None:
        """The oldest batch, read from disk, or None if the spool is empty."""
        with self._lock:
            if not self._pending.segments:
                return None
            segment = self._pending.segments[0]
            record = segment.records[0]
            with segment.path.open("rb") as handle:
                handle.seek(record.offset)
                data = handle.read(record.length)
            magic, length, points, crc = _HEADER.unpack_from(data)
            body = data[_HEADER.size : _HEADER.size + length]
            if magic != _MAGIC or len(body) != length or zlib.crc32(body) != crc:
                raise OSError(f"spool segment {segment.path} changed on disk at {record.offset}")
            return SpooledBatch(segment.seq, record.offset, body, points)

    def ack(self, batch: SpooledBatch) -> None:
        """The store took ``batch`` (the oldest): forget it, on disk too."""
        with self._lock:
            self._remove_head(batch)
            self.replayed_points += batch.points
            self._refresh_counts()

    def _remove_head(self, batch: SpooledBatch) -> None:
        segments = self._pending.segments
        if not segments or segments[0].seq != batch.segment:
            return  # dropped meanwhile to make room
        head = segments[0]
        if not head.records or head.records[0].offset != batch.offset:
            return
        finished = self._pending.pop_head()
        # A finished segment: record the new cursor first, then delete the file (a crash in
        # between leaves a segment older than the cursor, which the next start deletes unread).
        self._write_cursor()
        if finished is not None:
            finished.path.unlink(missing_ok=True)

    def dead_letter(
        self, batch: SpooledBatch | None, body: bytes, points: int, reason: str
    ) -> None:
        """Move a batch the store will never take into the dead-letter segments.

        ``batch`` is the spooled batch it came from (removed from the pending spool), or None for
        a batch that was never spooled.
        """
        with self._lock:
            if batch is not None:
                self._remove_head(batch)
            self._append(self._dead, body, points, what="dead-letter spool")
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with (self._dead.directory / "reasons.log").open("a", encoding="utf-8") as log:
                log.write(f"{stamp}\t{points}\t{' '.join(reason.split())}\n")
            self._refresh_counts()

    def is_empty(self) -> bool:
        return self._counts[0] == 0

    def stats(self) -> SpoolStats:
        batches, points, size = self._counts
        dead_batches, dead_points, dead_size = self._dead_counts
        return SpoolStats(
            pending_batches=batches,
            pending_points=points,
            pending_bytes=size,
            spooled_points=self.spooled_points,
            replayed_points=self.replayed_points,
            dropped_points=self.dropped_points,
            dropped_batches=self.dropped_batches,
            dead_letter_batches=dead_batches,
            dead_letter_points=dead_points,
            dead_letter_bytes=dead_size,
            max_bytes=self.max_bytes,
        )

    def close(self) -> None:
        with self._lock:
            self._pending.close()
            self._dead.close()


# ---- the sink ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    body: bytes
    points: int


@dataclass(slots=True)
class _Marker:
    done: asyncio.Future[None]


_Item = _Batch | _Marker


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """The spool's numbers plus the state of delivery, for the API and the status page."""

    state: Literal["delivering", "spooling"]
    target: str
    delivered_points: int
    skipped_points: int
    last_error: str | None
    last_error_at: float | None
    spool: SpoolStats


class SpoolingSink:
    """Delivers batches to ``inner`` in order; spools them on failure and replays them.

    Satisfies :class:`~monitors.sinks.base.MetricSink` and ``LineProtocolSink``. ``write`` returns
    once the batch is serialised and queued (at most ``queue_batches`` wait in memory; beyond that
    ``write`` waits): a sender task then delivers it or spools it. ``flush`` returns once every
    batch written before it was delivered or spooled; ``drain`` waits for the spool to empty too.

    Pipelining: one request is in flight at a time (order), and the caller's CPU work — above
    all serialising the next batch, which holds the event loop for milliseconds — should run
    while the store works on that request, not while the request is still being written. So
    ``write`` also waits (at most ``_WIRE_WAIT_S``) until the request the sender is preparing has
    been handed to the socket (``on_wire`` of ``LineProtocolSink.write_lines``).
    """

    def __init__(
        self,
        inner: LineProtocolSink,
        spool: Spool,
        *,
        encoder: LineEncoder | None = None,
        queue_batches: int = 4,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.inner = inner
        self.spool = spool
        self._encoder = encoder or LineEncoder()
        self._items: deque[_Item] = deque()
        self._slots = asyncio.Semaphore(queue_batches)
        self._wake = asyncio.Event()
        # Set unless the sender is preparing a request that is not on the wire yet.
        self._wire_free = asyncio.Event()
        self._wire_free.set()
        self._idle = True  # the sender waits for work, or has not run yet
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._retry_delay = retry_initial_s
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._outage_since: float | None = None
        self.delivered_points = 0
        self.skipped_points = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def __repr__(self) -> str:
        return f"SpoolingSink({self.inner.target!r}, {self.spool!r})"

    @property
    def target(self) -> str:
        return self.inner.target

    def stats(self) -> DeliveryStats:
        return DeliveryStats(
            state="delivering" if self.spool.is_empty() else "spooling",
            target=self.inner.target,
            delivered_points=self.delivered_points,
            skipped_points=self.skipped_points,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            spool=self.spool.stats(),
        )

    # ---- the MetricSink side ------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender (``write`` does it too); replays what the spool holds from before."""
        if self._closed:
            raise RuntimeError("SpoolingSink is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"spool-sender {self.inner.target}"
            )

    async def write(self, points: Sequence[Sample]) -> None:
        batch = self._encoder.encode(points)
        if batch.skipped:
            self.skipped_points += batch.skipped
            log_skipped(logger, batch.skipped, self.skipped_points, self.inner.target)
        if batch.points:
            await self.write_lines(batch.body, batch.points)

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        """Queue a serialised batch (``on_wire`` is called once it is queued)."""
        if self._stopping:
            raise RuntimeError("SpoolingSink is closed; no more writes")
        self.start()
        await self._slots.acquire()
        self._items.append(_Batch(body, points))
        if on_wire is not None:
            on_wire()
        if self._idle and self.spool.is_empty():
            self._wire_free.clear()  # the sender sends this batch next
        self._wake.set()
        # Let the sender put its next request on the wire before the caller goes on (e.g.
        # serialising the next batch, which would hold that request up for its whole duration).
        if self._wire_free.is_set():
            await asyncio.sleep(0)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wire_free.wait(), _WIRE_WAIT_S)

    async def flush(self) -> None:
        if self._task is None or self._task.done():
            return
        marker = _Marker(asyncio.get_running_loop().create_future())
        self._items.append(marker)
        self._wake.set()
        await marker.done

    async def drain(self, timeout: float | None = None) -> bool:
        """Flush, then wait until the spool is empty; True if it emptied within ``timeout``."""
        self.start()
        await self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.spool.is_empty():
            if self._task is None or self._task.done():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        """Deliver or spool everything queued, stop the sender, close the store and the spool.

        What is still in the spool stays there and is replayed by the next process.
        """
        if self._closed:
            return
        self._stopping = True
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._closed = True
        await asyncio.to_thread(self.spool.close)
        await self.inner.close()

    # ---- the sender ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._step()
                except Exception:
                    # Last line of defence: the sender must outlive a bug, or writers would wait
                    # for ever. Answers of the store and disk errors are handled (and counted)
                    # below; reaching this means a bug, and the traceback says which.
                    self._wire_free.set()
                    logger.exception(
                        "the spool sender for %s failed; restarting it in 1 s", self.target
                    )
                    await asyncio.sleep(1.0)
        finally:
            self._wire_free.set()
            self._idle = True

    async def _step(self) -> None:
        """Deliver what is queued, then replay one spooled batch or wait for work."""
        loop = asyncio.get_running_loop()
        self._idle = False
        while self._items:
            item = self._items.popleft()
            if isinstance(item, _Marker):
                if not item.done.done():
                    item.done.set_result(None)
                continue
            try:
                await self._deliver(item)
            finally:
                self._wire_free.set()
                self._slots.release()
        timeout: float | None = None
        if not self.spool.is_empty():
            now = loop.time()
            if now >= self._retry_at:
                await self._replay_one(loop)
                return
            timeout = self._retry_at - now
        self._wake.clear()
        if self._items:
            return
        self._idle = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            self._idle = False

    async def _deliver(self, item: _Batch) -> None:
        if not self.spool.is_empty():
            await self._to_spool(item)
            return
        self._wire_free.clear()
        try:
            await self._send(item.body, item.points, self._wire_free.set)
        except MetricsWriteError as err:
            self._wire_free.set()
            self._record_error(err)
            if not err.retryable:
                await self._dead_letter(None, item.body, item.points, err)
                return
            self._start_outage(err)
            await self._to_spool(item)
            return
        self.delivered_points += item.points

    async def _send(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        """``inner.write_lines``; an unexpected exception (a bug, not an answer) is logged with
        its traceback and handled like an outage, so the batch is spooled, not lost, and the
        sender keeps running."""
        try:
            await self.inner.write_lines(body, points, on_wire)
        except MetricsWriteError:
            raise
        except Exception as err:
            logger.exception(
                "unexpected error writing to %s; treating it as an outage", self.target
            )
            raise MetricsWriteError(
                f"unexpected error writing to {self.target}: {err!r} — the batch is spooled; "
                "please report this",
                url=self.target,
                retryable=True,
            ) from err

    async def _to_spool(self, item: _Batch) -> None:
        try:
            await asyncio.to_thread(self.spool.append, item.body, item.points)
        except OSError as err:
            self.spool.dropped_points += item.points
            self.spool.dropped_batches += 1
            logger.error(
                "spool %s cannot store a batch (%s): dropped its %d point(s) — check the disk "
                "and the spool directory's permissions",
                self.spool.directory,
                err,
                item.points,
            )

    async def _replay_one(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            batch = await asyncio.to_thread(self.spool.peek)
        except OSError as err:
            logger.error("spool %s cannot be read (%s); retrying", self.spool.directory, err)
            self._retry_at = loop.time() + self._retry_max
            return
        if batch is None:
            return
        try:
            await self._send(batch.body, batch.points)
        except MetricsWriteError as err:
            self._record_error(err)
            if not err.retryable:
                await self._dead_letter(batch, batch.body, batch.points, err)
                return
            wait = self._retry_delay
            if err.retry_after is not None:
                wait = max(wait, min(err.retry_after, self._retry_max * 10))
            self._retry_at = loop.time() + wait
            self._retry_delay = min(self._retry_delay * 2, self._retry_max)
            logger.debug("replay to %s failed (%s); next try in %.1f s", self.target, err, wait)
            return
        # Shielded: once the store has the batch, a cancel (close) must not skip recording it.
        try:
            await asyncio.shield(asyncio.to_thread(self.spool.ack, batch))
        except OSError as err:
            logger.error(
                "spool %s could not record a delivered batch (%s); after a restart it is sent "
                "again, which InfluxDB absorbs (same points overwrite themselves)",
                self.spool.directory,
                err,
            )
        self.delivered_points += batch.points
        self._retry_delay = self._retry_initial
        if self._outage_since is not None:
            logger.info(
                "%s takes writes again after %.1f s; replaying the spool (%d point(s) left)",
                self.target,
                time.monotonic() - self._outage_since,
                self.spool.stats().pending_points,
            )
            self._outage_since = None
        if self.spool.is_empty():
            logger.info(
                "spool %s replayed completely (%d point(s) since start)",
                self.spool.directory,
                self.spool.replayed_points,
            )

    async def _dead_letter(
        self, batch: SpooledBatch | None, body: bytes, points: int, err: MetricsWriteError
    ) -> None:
        logger.error(
            "%s; %d point(s) moved to the dead-letter spool %s/dead (not retried)",
            err,
            points,
            self.spool.directory,
        )
        try:
            await asyncio.to_thread(self.spool.dead_letter, batch, body, points, str(err))
        except OSError as io_err:
            self.spool.dropped_points += points
            logger.error("dead-letter spool cannot store the batch (%s): dropped", io_err)

    def _start_outage(self, err: MetricsWriteError) -> None:
        loop = asyncio.get_running_loop()
        self._retry_delay = self._retry_initial
        wait = err.retry_after if err.retry_after is not None else self._retry_delay
        self._retry_at = loop.time() + wait
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "%s — spooling points to %s until it takes writes again", err, self.spool.directory
            )

    def _record_error(self, err: MetricsWriteError) -> None:
        self.last_error = str(err)
        self.last_error_at = time.time()
