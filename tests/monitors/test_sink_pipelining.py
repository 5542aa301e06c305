"""Pipelining in the sink chain: ``SpoolingSink.write`` lets the request the sender is preparing
reach the socket (``on_wire``) before the caller goes on to serialise the next batch, never waits
for a request already on the wire, never waits unboundedly; ``InfluxV1Sink`` reports ``on_wire``
once the body is sent, before the answer; order and spooling are unchanged by it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitors.errors import MetricsWriteError
from monitors.sinks import spool as spool_module
from monitors.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from monitors.sinks.spool import Spool, SpoolingSink


class SlowStart:
    """A LineProtocolSink like an HTTP client: several loop turns before the request is on the
    wire, then the store works until ``answer`` is set (per batch, in order)."""

    target = "fake://store"

    def __init__(self, *, fail_first: int = 0, report_wire: bool = True) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.answer = asyncio.Event()
        self.fail_first = fail_first
        self.report_wire = report_wire

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        self.events.append(("on wire", body))
        if on_wire is not None and self.report_wire:
            on_wire()
        await self.answer.wait()
        if self.fail_first:
            self.fail_first -= 1
            self.events.append(("failed", body))
            raise MetricsWriteError("HTTP 503", url=self.target, status=503, retryable=True)
        self.events.append(("stored", body))

    async def close(self) -> None:
        pass


def test_write_returns_once_the_request_it_handed_over_is_on_the_wire(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStart()
        sink = SpoolingSink(store, Spool(tmp_path))
        await sink.write_lines(b"a", 1)
        assert store.events == [("on wire", b"a")]  # not merely queued
        # a request is in flight: the next write does not wait for it (nor for its answer)
        await sink.write_lines(b"b", 1)
        await sink.write_lines(b"c", 1)
        assert store.events == [("on wire", b"a")]
        store.answer.set()
        await sink.flush()
        assert store.events == [
            ("on wire", b"a"),
            ("stored", b"a"),
            ("on wire", b"b"),
            ("stored", b"b"),
            ("on wire", b"c"),
            ("stored", b"c"),
        ]
        assert sink.stats().delivered_points == 3
        await sink.close()

    asyncio.run(scenario())


def test_write_waits_a_bounded_time_for_a_store_that_never_reports_on_wire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "_WIRE_WAIT_S", 0.05)

    async def scenario() -> None:
        store = SlowStart(report_wire=False)
        sink = SpoolingSink(store, Spool(tmp_path))
        started = time.monotonic()
        await sink.write_lines(b"a", 1)
        assert 0.04 <= time.monotonic() - started < 2.0
        store.answer.set()
        await sink.flush()
        assert [body for what, body in store.events if what == "stored"] == [b"a"]
        await sink.close()

    asyncio.run(scenario())


def test_a_failure_after_on_wire_still_spools_and_replays_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowStart(fail_first=1)
        sink = SpoolingSink(store, Spool(tmp_path), retry_initial_s=0.01, retry_max_s=0.02)
        for body in (b"a", b"b", b"c"):
            await sink.write_lines(body, 1)
        store.answer.set()
        assert await sink.drain(timeout=5)
        stored = [body for what, body in store.events if what == "stored"]
        assert stored == [b"a", b"b", b"c"]
        stats = sink.stats()
        assert stats.delivered_points == 3 and stats.spool.spooled_points == 3
        await sink.close()

    asyncio.run(scenario())


def test_influx_v1_reports_on_wire_after_sending_the_body_and_before_the_answer() -> None:
    async def scenario() -> None:
        received = asyncio.Event()
        respond = asyncio.Event()
        bodies: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            bodies.append(await reader.readexactly(length))
            received.set()
            await respond.wait()
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = InfluxV1Sink(InfluxV1Config(url=f"http://127.0.0.1:{port}", database="db"))
        on_wire = asyncio.Event()
        calls: list[float] = []

        def wired() -> None:
            calls.append(time.monotonic())
            on_wire.set()

        body = b"m f=1 1\n" * 20_000  # larger than a socket buffer
        writing = asyncio.create_task(sink.write_lines(body, 20_000, wired))
        await asyncio.wait_for(on_wire.wait(), 5)
        assert not writing.done()  # the answer has not come yet
        await asyncio.wait_for(received.wait(), 5)
        respond.set()
        await asyncio.wait_for(writing, 5)
        assert len(calls) == 1 and bodies == [body]
        await sink.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
