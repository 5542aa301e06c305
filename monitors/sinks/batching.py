"""Size- and time-limited batching in front of any :class:`~monitors.sinks.base.MetricSink`.

Pollers write a few points at a time; stores want thousands per request. :class:`BatchingSink`
collects points and hands them to the sink behind it in batches of at most ``max_points``, at the
latest ``max_delay_s`` after the oldest buffered point arrived. Batches reach the inner sink one at
a time, in the order the points were written.

The usual chain for InfluxDB is ``BatchingSink(SpoolingSink(InfluxV1Sink(...), Spool(...)))``:
``SpoolingSink.write`` only serialises and queues (and lets the request being prepared reach the
socket first), so the next batch is being serialised while InfluxDB works on the previous one.
For the embedded store, ``BatchingSink(EmbeddedStore(...))``.

If the inner sink raises on a batch flushed by the timer (nobody is awaiting it), the points are
counted in ``failed_points`` and logged at ERROR; with a ``SpoolingSink`` behind, that only happens
if the spool's disk fails. On a flush caused by ``write``/``flush``, the error reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from monitors.errors import MetricsError
from monitors.sinks.base import MetricSink, Sample

logger = logging.getLogger(__name__)


class BatchingSink:
    """Buffers points; writes them to ``inner`` in batches of <= ``max_points``."""

    def __init__(
        self, inner: MetricSink, *, max_points: int = 5_000, max_delay_s: float = 1.0
    ) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, got {max_points}")
        self.inner = inner
        self.max_points = max_points
        self.max_delay_s = max_delay_s
        self._buffer: list[Sample] = []
        self._lock = asyncio.Lock()
        self._first_at: float | None = None
        self._timer: asyncio.Task[None] | None = None
        self._filled = asyncio.Event()
        self._closed = False
        self.batches = 0
        self.failed_points = 0

    def __repr__(self) -> str:
        return f"BatchingSink({self.inner!r}, max_points={self.max_points})"

    async def write(self, points: Sequence[Sample]) -> None:
        if self._closed:
            raise RuntimeError("BatchingSink is closed; no more writes")
        if not points:
            return
        if not self._buffer:
            self._first_at = asyncio.get_running_loop().time()
            self._filled.set()
        self._buffer.extend(points)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._tick(), name="batch-timer")
        if len(self._buffer) >= self.max_points:
            await self._send(full_only=True)

    async def flush(self) -> None:
        await self._send(full_only=False)
        await self.inner.flush()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        try:
            await self.flush()
        finally:
            await self.inner.close()

    async def _send(self, *, full_only: bool, from_timer: bool = False) -> None:
        async with self._lock:
            while self._buffer and (len(self._buffer) >= self.max_points or not full_only):
                batch = self._buffer[: self.max_points]
                del self._buffer[: self.max_points]
                if not self._buffer:
                    self._first_at = None
                    self._filled.clear()
                self.batches += 1
                try:
                    await self.inner.write(batch)
                except (MetricsError, OSError) as err:
                    if not from_timer:
                        raise
                    # Nobody awaits a timed batch: count its points and say so loudly.
                    self.failed_points += len(batch)
                    logger.error(
                        "a timed batch of %d point(s) could not be written to %r (%s); they are "
                        "lost — put a SpoolingSink behind the BatchingSink to keep them",
                        len(batch),
                        self.inner,
                        err,
                    )

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._filled.wait()
            first = self._first_at
            if first is None:
                self._filled.clear()
                continue
            delay = first + self.max_delay_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                if self._first_at != first:
                    continue  # that point left with a full batch; a newer one starts the clock
            await self._send(full_only=False, from_timer=True)
