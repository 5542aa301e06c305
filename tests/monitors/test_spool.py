"""The on-disk spool and SpoolingSink: order, bounds, dead letters, restarts, and an outage of a
real ``influxd`` in the middle of writing (the Monitoring issue's reliability test).

Delivery is at least once; a batch sent twice (after a crash between the server's acknowledgement
and the spool recording it) does not duplicate data, because InfluxDB keeps one value per series,
field and timestamp — ``test_replaying_a_batch_twice_does_not_duplicate_points`` proves it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from monitors.errors import MetricsWriteError
from monitors.sinks.base import Sample
from monitors.sinks.batching import BatchingSink
from monitors.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from monitors.sinks.lineprotocol import encode_batch
from monitors.sinks.spool import Spool, SpoolingSink
from tests.harness import free_ports, missing_binary
from tests.harness.influx import DEBIAN_PACKAGE, InfluxServer, find_influxd
from tests.monitors.influx_restartable import RestartableInflux

T0 = 1_700_000_000 * 1_000_000_000


def body(n: int, size: int = 10) -> bytes:
    """A distinct, recognisable batch body of about ``size`` bytes."""
    return f"m seq={n}i {n}".encode().ljust(size, b" ")


def point(seq: int, measurement: str = "outage") -> Sample:
    return Sample(
        measurement,
        {"link": "county-1-primary", "site": "county-1"},
        {"seq": seq, "v": seq * 0.5},
        T0 + seq * 1_000_000,
    )


def stored_seqs(server: InfluxServer, database: str, measurement: str = "outage") -> list[int]:
    result = server.query(f'SELECT "seq" FROM "{measurement}"', db=database, epoch="ns")
    series = result["results"][0].get("series") or []
    if not series:
        return []
    rows = series[0]["values"]
    for ts, seq in rows:
        assert ts == T0 + seq * 1_000_000, "a point came back with another timestamp"
    return [seq for _, seq in rows]


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused at once)."""
    (port,) = free_ports(1)
    return f"http://127.0.0.1:{port}"


class Recorder:
    """A LineProtocolSink in front of the real one that records what was acknowledged, in order."""

    def __init__(self, inner: InfluxV1Sink) -> None:
        self.inner = inner
        self.acked: list[bytes] = []
        self.failures = 0

    @property
    def target(self) -> str:
        return self.inner.target

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        try:
            await self.inner.write_lines(body, points, on_wire)
        except MetricsWriteError:
            self.failures += 1
            raise
        self.acked.append(body)

    async def close(self) -> None:
        await self.inner.close()

    def acked_seqs(self) -> list[int]:
        seqs = []
        for chunk in self.acked:
            for line in chunk.decode().splitlines():
                fields = line.split(" ")[1]
                seqs.append(int(dict(f.split("=") for f in fields.split(","))["seq"].rstrip("i")))
        return seqs


# ---- the Spool on its own ---------------------------------------------------------------------


def test_batches_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000, segment_bytes=100, fsync=False)
    for n in range(20):
        spool.append(body(n, 40), points=1)
    assert spool.stats().pending_batches == 20
    assert len(list((tmp_path / "pending").glob("*.seg"))) > 5  # rotated
    seen = []
    while (batch := spool.peek()) is not None:
        seen.append(batch.body)
        spool.ack(batch)
    assert seen == [body(n, 40) for n in range(20)]
    stats = spool.stats()
    assert (stats.pending_batches, stats.pending_points, stats.pending_bytes) == (0, 0, 0)
    assert stats.spooled_points == stats.replayed_points == 20
    assert list((tmp_path / "pending").glob("*.seg")) == []


def test_reopening_resumes_after_the_last_acknowledged_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=100)
    for n in range(10):
        spool.append(body(n, 40), points=3)
    for _ in range(4):
        batch = spool.peek()
        assert batch is not None
        spool.ack(batch)
    spool.close()

    again = Spool(tmp_path, segment_bytes=100)
    assert again.stats().pending_points == 18
    remaining = []
    while (batch := again.peek()) is not None:
        remaining.append(batch.body)
        again.ack(batch)
    assert remaining == [body(n, 40) for n in range(4, 10)]
    again.append(body(99), 1)  # a new segment never reuses an old number
    assert again.peek() == again.peek()
    again.close()


def test_a_torn_last_record_is_cut_off_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    for n in range(3):
        spool.append(body(n), 1)
    spool.close()
    (segment,) = (tmp_path / "pending").glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the process died in the middle of the third append

    with caplog.at_level(logging.WARNING, logger="monitors.sinks.spool"):
        again = Spool(tmp_path)
    assert "truncated record" in caplog.text
    assert again.stats().pending_batches == 2
    batch = again.peek()
    assert batch is not None and batch.body == body(0)
    again.append(body(3), 1)  # appends go after the cut
    seen = []
    while (batch := again.peek()) is not None:
        seen.append(batch.body)
        again.ack(batch)
    assert seen == [body(0), body(1), body(3)]


def test_segments_older_than_the_cursor_are_not_replayed(tmp_path: Path) -> None:
    """A crash after recording the cursor but before deleting a finished segment."""
    spool = Spool(tmp_path, segment_bytes=60)
    for n in range(4):
        spool.append(body(n, 40), 1)  # one record per segment
    first = sorted((tmp_path / "pending").glob("*.seg"))[0]
    kept = first.read_bytes()
    batch = spool.peek()
    assert batch is not None
    spool.ack(batch)
    spool.close()
    first.write_bytes(kept)  # the deletion never happened

    again = Spool(tmp_path, segment_bytes=60)
    assert again.stats().pending_batches == 3
    batch = again.peek()
    assert batch is not None and batch.body == body(1, 40)
    assert not first.exists()


def test_a_full_spool_drops_the_oldest_counts_and_alarms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, max_bytes=1_000, segment_bytes=200, fsync=False)
    with caplog.at_level(logging.ERROR, logger="monitors.sinks.spool"):
        for n in range(40):
            spool.append(body(n, 84), points=5)  # 100 bytes a record with its header
    stats = spool.stats()
    assert stats.pending_bytes <= 1_000
    on_disk = sum(p.stat().st_size for p in (tmp_path / "pending").glob("*.seg"))
    assert stats.pending_bytes == on_disk
    assert Spool(tmp_path, max_bytes=1_000).stats().pending_points == stats.pending_points
    assert stats.dropped_batches == 40 - stats.pending_batches
    assert stats.dropped_points == 5 * stats.dropped_batches > 0
    assert "is full" in caplog.text and "dropped the oldest" in caplog.text
    survivors = []
    while (batch := spool.peek()) is not None:
        survivors.append(batch.body)
        spool.ack(batch)
    assert survivors == [body(n, 84) for n in range(40 - len(survivors), 40)]  # the newest


def test_a_batch_larger_than_the_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.append(b"x" * 500, points=7)
    assert spool.stats().dropped_points == 7
    assert spool.peek() is None


def test_dead_letters_are_kept_counted_and_explained(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(body(1), 2)
    batch = spool.peek()
    assert batch is not None
    spool.dead_letter(batch, batch.body, batch.points, 'database "x" not found\n— create it')
    spool.dead_letter(None, body(2), 3, "bad line protocol")
    stats = spool.stats()
    assert (stats.pending_batches, stats.dead_letter_batches, stats.dead_letter_points) == (0, 2, 5)
    reasons = (tmp_path / "dead" / "reasons.log").read_text().splitlines()
    assert reasons[0].endswith('\t2\tdatabase "x" not found — create it')
    spool.close()
    assert Spool(tmp_path).stats().dead_letter_points == 5


# ---- BatchingSink in front ---------------------------------------------------------------------


class FakeSink:
    """A MetricSink that records batches; ``fail`` makes every write raise."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail = False
        self.flushed = self.closed = 0

    async def write(self, points: Sequence[Sample]) -> None:
        if self.fail:
            raise MetricsWriteError("store down", url="fake://")
        self.batches.append([int(p.fields["seq"]) for p in points])

    async def flush(self) -> None:
        self.flushed += 1

    async def close(self) -> None:
        self.closed += 1


def test_batches_are_cut_by_size_in_order() -> None:
    inner = FakeSink()

    async def scenario() -> None:
        sink = BatchingSink(inner, max_points=4, max_delay_s=60)
        await sink.write([point(n) for n in range(3)])
        assert inner.batches == []
        await sink.write([point(n) for n in range(3, 13)])
        assert inner.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
        await sink.close()

    asyncio.run(scenario())
    assert inner.batches[-1] == [12] and inner.flushed == 1 and inner.closed == 1


def test_a_partial_batch_leaves_after_max_delay() -> None:
    inner = FakeSink()

    async def scenario() -> None:
        sink = BatchingSink(inner, max_points=100, max_delay_s=0.05)
        await sink.write([point(1), point(2)])
        await asyncio.sleep(0.01)
        assert inner.batches == []
        await asyncio.sleep(0.15)
        assert inner.batches == [[1, 2]]
        await sink.write([point(3)])
        await asyncio.sleep(0.15)
        assert inner.batches == [[1, 2], [3]]
        await sink.close()

    asyncio.run(scenario())


def test_a_failed_timed_batch_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    inner = FakeSink()
    inner.fail = True

    async def scenario() -> int:
        sink = BatchingSink(inner, max_points=100, max_delay_s=0.02)
        await sink.write([point(n) for n in range(5)])
        await asyncio.sleep(0.15)
        inner.fail = False
        await sink.close()
        return sink.failed_points

    with caplog.at_level(logging.ERROR, logger="monitors.sinks.batching"):
        assert asyncio.run(scenario()) == 5
    assert "5 point(s) could not be written" in caplog.text and "SpoolingSink" in caplog.text


def test_a_failed_flush_reaches_the_caller() -> None:
    inner = FakeSink()
    inner.fail = True

    async def scenario() -> None:
        sink = BatchingSink(inner, max_points=100, max_delay_s=60)
        await sink.write([point(1)])
        with pytest.raises(MetricsWriteError):
            await sink.flush()

    asyncio.run(scenario())


# ---- SpoolingSink without a server ---------------------------------------------------------------


def test_a_closed_sink_keeps_its_spool_for_the_next_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=closed_port_url(), database="x", timeout_s=2)),
            Spool(tmp_path),
        )
        await sink.write([point(n) for n in range(10)])
        await sink.write([point(n) for n in range(10, 15)])
        await sink.flush()
        stats = sink.stats()
        assert stats.state == "spooling"
        assert stats.spool.pending_points == 15 and stats.delivered_points == 0
        assert stats.last_error is not None and "unreachable" in stats.last_error
        await sink.close()

    asyncio.run(scenario())
    assert Spool(tmp_path).stats().pending_points == 15


class Flaky:
    """A LineProtocolSink that fails with a bug (not a store answer) until told otherwise."""

    target = "flaky://"

    def __init__(self) -> None:
        self.broken = True
        self.got: list[bytes] = []

    async def write_lines(
        self, body: bytes, points: int, on_wire: Callable[[], object] | None = None
    ) -> None:
        if self.broken:
            raise RuntimeError("a bug in a driver")
        self.got.append(body)

    async def close(self) -> None:
        pass


def test_an_unexpected_exception_spools_the_batch_and_the_sender_survives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky()

    async def scenario() -> None:
        sink = SpoolingSink(flaky, Spool(tmp_path), retry_initial_s=0.01, retry_max_s=0.05)
        with caplog.at_level(logging.ERROR, logger="monitors.sinks.spool"):
            await sink.write_lines(b"a", 1)
            await sink.write_lines(b"b", 1)
            await sink.flush()
        assert sink.stats().spool.pending_batches == 2
        assert "a bug in a driver" in caplog.text and "Traceback" in caplog.text
        flaky.broken = False
        await sink.write_lines(b"c", 1)
        assert await sink.drain(timeout=5)
        await sink.close()

    asyncio.run(scenario())
    assert flaky.got == [b"a", b"b", b"c"]


def test_skipped_points_warn_once_then_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> int:
        sink = SpoolingSink(Flaky(), Spool(tmp_path))
        nan = Sample("m", {}, {"f": float("nan")}, 1)
        with caplog.at_level(logging.WARNING, logger="monitors.sinks.spool"):
            for _ in range(3):
                await sink.write([nan])
        await sink.close()
        return sink.stats().skipped_points

    assert asyncio.run(scenario()) == 3
    warnings = [r for r in caplog.records if "nothing InfluxDB can store" in r.getMessage()]
    assert len(warnings) == 1 and "logged at DEBUG" in warnings[0].getMessage()


# ---- against a real influxd ---------------------------------------------------------------------


@pytest.fixture
def restartable_influx() -> Iterator[RestartableInflux]:
    influxd = find_influxd()
    if influxd is None:
        missing_binary("InfluxDB (influxd)", DEBIAN_PACKAGE)
    server = RestartableInflux.launch(influxd)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.influx
@pytest.mark.slow
def test_outage_every_point_arrives_in_order_none_twice(
    restartable_influx: RestartableInflux, tmp_path: Path
) -> None:
    """InfluxDB stopped for a while in the middle of writing, then restarted."""
    server = restartable_influx
    written: list[int] = []

    async def scenario() -> Recorder:
        recorder = Recorder(
            InfluxV1Sink(InfluxV1Config(url=server.url, database=server.database, timeout_s=2))
        )
        spooling = SpoolingSink(recorder, Spool(tmp_path), retry_initial_s=0.1, retry_max_s=0.4)
        sink = BatchingSink(spooling, max_points=50, max_delay_s=0.1)
        stop = asyncio.Event()

        async def poller() -> None:
            seq = 0
            while not stop.is_set():
                batch = [point(seq + i) for i in range(10)]
                await sink.write(batch)
                written.extend(range(seq, seq + 10))
                seq += 10
                await asyncio.sleep(0.01)

        task = asyncio.create_task(poller())
        await asyncio.sleep(1.0)
        before_outage = len(written)
        await asyncio.to_thread(server.halt)
        await asyncio.sleep(1.5)
        assert spooling.stats().state == "spooling"
        during_outage = len(written) - before_outage
        await asyncio.to_thread(server.resume)
        await asyncio.sleep(1.0)
        stop.set()
        await task
        await sink.flush()
        assert await spooling.drain(timeout=30), spooling.stats()
        stats = spooling.stats()
        assert during_outage > 100
        assert stats.spool.spooled_points >= during_outage - 60  # in flight when it stopped
        assert stats.spool.replayed_points == stats.spool.spooled_points
        assert stats.spool.dropped_points == 0 and stats.spool.dead_letter_points == 0
        assert stats.delivered_points == len(written)
        await sink.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.failures > 0, "the outage was not noticed"
    # delivered in order, each batch acknowledged exactly once
    assert recorder.acked_seqs() == written
    # and stored: every point, exact values, none twice
    assert stored_seqs(server, server.database) == written
    result = server.query('SELECT count("seq"), sum("v") FROM "outage"', db=server.database)
    count, total = result["results"][0]["series"][0]["values"][0][1:]
    assert count == len(written)
    assert total == pytest.approx(sum(s * 0.5 for s in written))


@pytest.mark.influx
def test_a_full_spool_drops_oldest_and_a_restarted_process_replays_the_rest(
    influxdb_server: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = influxdb_server.create_database()
    batches = [[point(n * 10 + i, "full") for i in range(10)] for n in range(30)]
    batch_bytes = len(encode_batch(batches[0]).body) + 16

    async def outage() -> None:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=closed_port_url(), database=database, timeout_s=2)),
            Spool(tmp_path, max_bytes=batch_bytes * 12, segment_bytes=batch_bytes * 3),
        )
        for batch in batches:
            await sink.write(batch)
        await sink.flush()
        stats = sink.stats().spool
        assert stats.dropped_points > 0 and stats.dropped_points % 10 == 0  # whole batches
        assert stats.dropped_points + stats.pending_points == 300
        await sink.close()

    with caplog.at_level(logging.ERROR, logger="monitors.sinks.spool"):
        asyncio.run(outage())
    assert "is full" in caplog.text

    async def next_process() -> int:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=influxdb_server.url, database=database)),
            Spool(tmp_path),
        )
        pending = sink.stats().spool.pending_points
        sink.start()
        assert await sink.drain(timeout=20)
        assert sink.stats().spool.replayed_points == pending
        await sink.close()
        return pending

    pending = asyncio.run(next_process())
    # exactly the newest points survived, in full, once
    assert stored_seqs(influxdb_server, database, "full") == list(range(300 - pending, 300))


@pytest.mark.influx
def test_a_write_that_can_never_succeed_is_dead_lettered_and_delivery_goes_on(
    influxdb_server: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = influxdb_server.create_database()

    async def scenario() -> None:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=influxdb_server.url, database=database)),
            Spool(tmp_path),
        )
        await sink.write([point(n, "dl") for n in range(5)])
        # "seq" was an integer; as a string it is a field type conflict: HTTP 400, forever
        conflict = Sample("dl", {"link": "county-1-primary", "site": "county-1"}, {"seq": "x"}, T0)
        await sink.write([conflict])
        await sink.write([point(n, "dl") for n in range(5, 10)])
        await sink.flush()
        stats = sink.stats()
        assert stats.spool.dead_letter_points == 1 and stats.spool.pending_points == 0
        assert stats.delivered_points == 10
        assert stats.last_error is not None and "field type conflict" in stats.last_error
        await sink.close()

    with caplog.at_level(logging.ERROR, logger="monitors.sinks.spool"):
        asyncio.run(scenario())
    assert "dead-letter" in caplog.text
    assert stored_seqs(influxdb_server, database, "dl") == list(range(10))
    assert "field type conflict" in (tmp_path / "dead" / "reasons.log").read_text()


@pytest.mark.influx
def test_an_unknown_database_is_dead_lettered_not_retried_forever(
    influxdb_server: InfluxServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=influxdb_server.url, database="no_such_db")),
            Spool(tmp_path),
        )
        for n in range(3):
            await sink.write([point(n)])
        await asyncio.wait_for(sink.flush(), timeout=10)
        stats = sink.stats()
        assert stats.spool.dead_letter_points == 3 and stats.spool.pending_points == 0
        assert stats.last_error is not None
        assert 'database "no_such_db" not found' in stats.last_error
        assert "TIANDI_INFLUX_DATABASE" in stats.last_error
        await sink.close()

    asyncio.run(scenario())


@pytest.mark.influx
def test_replaying_a_batch_twice_does_not_duplicate_points(
    influxdb_server: InfluxServer, tmp_path: Path
) -> None:
    """The process dies after InfluxDB acknowledged spooled batches but before the spool
    recorded it: the next process sends them again. InfluxDB overwrites a point with the same
    series, field and timestamp, so the data hold each point once."""
    database = influxdb_server.create_database()
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    for n in range(5):
        spool.append(encode_batch([point(n * 20 + i, "twice") for i in range(20)]).body, 20)
    spool.close()
    before_acks = tmp_path / "before-acks"
    shutil.copytree(spool_dir, before_acks)

    async def replay(directory: Path) -> int:
        sink = SpoolingSink(
            InfluxV1Sink(InfluxV1Config(url=influxdb_server.url, database=database)),
            Spool(directory),
        )
        sink.start()
        assert await sink.drain(timeout=20)
        replayed = sink.stats().spool.replayed_points
        await sink.close()
        return replayed

    assert asyncio.run(replay(spool_dir)) == 100
    assert asyncio.run(replay(before_acks)) == 100  # the same batches, a second time
    assert stored_seqs(influxdb_server, database, "twice") == list(range(100))
    result = influxdb_server.query('SELECT count("v") FROM "twice"', db=database)
    assert result["results"][0]["series"][0]["values"][0][1] == 100
