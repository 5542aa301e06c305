"""Probe responders: UDP echo from each link's far end, with the link's loss, latency, jitter."""

from __future__ import annotations

import asyncio
import itertools
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from inventory.enums import LinkRole
from lab.probes import ProbeResponder, measure_probe_rps
from lab.state import LabNetwork, Link

MODES = [pytest.param(True, id="shared-socket"), pytest.param(False, id="socket-per-link")]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replies:
    rtt_ms: dict[int, float] = field(default_factory=dict)
    payloads: dict[int, bytes] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)


class _Client(asyncio.DatagramProtocol):
    def __init__(self, sent: dict[int, float], replies: Replies) -> None:
        self.sent = sent
        self.replies = replies

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        seq = int.from_bytes(data[:4], "big")
        self.replies.rtt_ms[seq] = (time.monotonic() - self.sent[seq]) * 1000.0
        self.replies.payloads[seq] = data
        self.replies.sources.add(addr[0])


async def send_probes(address: str, port: int, count: int, *, wait: float = 0.5) -> Replies:
    """Send ``count`` probes (4-byte sequence + padding), collect the replies for ``wait`` s.

    Probes leave in bursts of 50, 2 ms apart, so that no socket buffer overflows on the way.
    """
    loop = asyncio.get_running_loop()
    sent: dict[int, float] = {}
    replies = Replies()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Client(sent, replies), local_addr=("127.0.0.1", 0)
    )
    try:
        for seq in range(count):
            sent[seq] = time.monotonic()
            transport.sendto(seq.to_bytes(4, "big") + b"tiandi-probe", (address, port))
            if seq % 50 == 49:
                await asyncio.sleep(0.002)
        await asyncio.sleep(wait)
    finally:
        transport.close()
    return replies


def link(net: LabNetwork, site: str = "site-a", role: LinkRole = LinkRole.PRIMARY) -> Link:
    return net.links[net.sites[site].links[role]]


def quiet(net: LabNetwork) -> None:
    for lk in net.links.values():
        lk.base_latency_ms = 0.0
        lk.base_jitter_ms = 0.0


def with_responder(
    net: LabNetwork,
    shared: bool,
    body: Callable[[ProbeResponder, int], Awaitable[None]],
    *,
    max_pending: int = 20_000,
) -> None:
    async def main() -> None:
        port = free_udp_port()
        responder = ProbeResponder(net, port=port, shared_socket=shared, max_pending=max_pending)
        await responder.start()
        try:
            await body(responder, port)
        finally:
            await responder.close()

    asyncio.run(main())


@pytest.mark.parametrize("shared", MODES)
def test_healthy_link_echoes_from_its_far_end(tiny_net: LabNetwork, shared: bool) -> None:
    quiet(tiny_net)
    target = link(tiny_net).probe_address

    async def body(responder: ProbeResponder, port: int) -> None:
        replies = await send_probes(target, port, 20, wait=0.2)
        assert len(replies.rtt_ms) == 20
        assert replies.payloads[7] == (7).to_bytes(4, "big") + b"tiandi-probe"
        assert replies.sources == {target}  # the reply comes from the probed address
        assert responder.stats.replied == 20
        expected_sockets = 1 if shared else len(tiny_net.links)
        assert responder.sockets == expected_sockets

    with_responder(tiny_net, shared, body)


@pytest.mark.parametrize("shared", MODES)
def test_loss_fraction(tiny_net: LabNetwork, shared: bool) -> None:
    quiet(tiny_net)
    target = link(tiny_net)
    target.loss = 0.2
    target.fade_loss = 0.1  # rain fade adds to the fault's loss

    async def body(responder: ProbeResponder, port: int) -> None:
        replies = await send_probes(target.probe_address, port, 2_000, wait=0.3)
        answered = len(replies.rtt_ms) / 2_000
        # 30 % loss: binomial sd over 2,000 probes is ~1 %; allow 5 sd.
        assert 0.65 <= answered <= 0.75
        assert responder.stats.lost == 2_000 - len(replies.rtt_ms)

    with_responder(tiny_net, shared, body)


def test_latency_and_jitter(tiny_net: LabNetwork) -> None:
    quiet(tiny_net)
    target = link(tiny_net)
    target.latency_ms, target.jitter_ms = 80.0, 0.0
    other = link(tiny_net, role=LinkRole.BACKUP)
    other.base_latency_ms, other.base_jitter_ms = 50.0, 10.0

    async def body(responder: ProbeResponder, port: int) -> None:
        fixed = await send_probes(target.probe_address, port, 20, wait=0.3)
        assert len(fixed.rtt_ms) == 20
        assert min(fixed.rtt_ms.values()) >= 80.0
        assert max(fixed.rtt_ms.values()) < 80.0 + 40.0
        jittery = await send_probes(other.probe_address, port, 400, wait=0.2)
        rtts = [jittery.rtt_ms[s] for s in sorted(jittery.rtt_ms)]
        assert len(rtts) == 400
        diffs = [abs(a - b) for a, b in itertools.pairwise(rtts)]
        assert 7.0 <= statistics.mean(diffs) <= 13.0  # mean |ΔRTT| is the link's jitter
        assert 45.0 <= statistics.median(rtts) <= 60.0

    with_responder(tiny_net, False, body)


@pytest.mark.parametrize("shared", MODES)
def test_cut_link_is_silent_until_restored(tiny_net: LabNetwork, shared: bool) -> None:
    quiet(tiny_net)
    target = link(tiny_net)

    async def body(responder: ProbeResponder, port: int) -> None:
        target.cut = True
        assert len((await send_probes(target.probe_address, port, 10, wait=0.2)).rtt_ms) == 0
        assert responder.stats.silent == 10
        target.cut = False
        assert len((await send_probes(target.probe_address, port, 10, wait=0.2)).rtt_ms) == 10

    with_responder(tiny_net, shared, body)


def test_unusable_links_do_not_answer(tiny_net: LabNetwork) -> None:
    quiet(tiny_net)
    primary, satellite = link(tiny_net), link(tiny_net, role=LinkRole.SATELLITE)
    router, terminal = tiny_net.devices["r-a"], tiny_net.devices["t-a"]

    async def count(responder: ProbeResponder, port: int, lk: Link) -> int:
        return len((await send_probes(lk.probe_address, port, 5, wait=0.15)).rtt_ms)

    async def body(responder: ProbeResponder, port: int) -> None:
        terminal.tx_enabled = False
        assert await count(responder, port, satellite) == 0
        terminal.tx_enabled = True
        assert await count(responder, port, satellite) == 5
        router.interfaces[0].admin_up = False
        assert await count(responder, port, primary) == 0
        router.interfaces[0].admin_up = True
        router.powered = False
        assert await count(responder, port, primary) == 0
        assert await count(responder, port, satellite) == 0

    with_responder(tiny_net, True, body)


def test_reply_in_flight_is_lost_when_the_link_is_cut(tiny_net: LabNetwork) -> None:
    quiet(tiny_net)
    target = link(tiny_net)
    target.latency_ms = 200.0

    async def body(responder: ProbeResponder, port: int) -> None:
        pending = asyncio.ensure_future(send_probes(target.probe_address, port, 10, wait=0.4))
        await asyncio.sleep(0.1)
        assert responder.pending == 10
        target.cut = True
        assert len((await pending).rtt_ms) == 0
        assert responder.pending == 0

    with_responder(tiny_net, True, body)


def test_pending_replies_are_capped(tiny_net: LabNetwork) -> None:
    quiet(tiny_net)
    target = link(tiny_net)
    target.latency_ms = 100.0

    async def body(responder: ProbeResponder, port: int) -> None:
        replies = await send_probes(target.probe_address, port, 50, wait=0.3)
        assert len(replies.rtt_ms) == 10
        assert responder.stats.overload == 40

    with_responder(tiny_net, True, body, max_pending=10)


def test_shared_socket_ignores_addresses_that_are_no_probe_target(tiny_net: LabNetwork) -> None:
    async def body(responder: ProbeResponder, port: int) -> None:
        replies = await send_probes("127.78.9.9", port, 3, wait=0.1)
        assert replies.rtt_ms == {}
        assert responder.stats.unknown == 3

    with_responder(tiny_net, True, body)


def test_measure_probe_rps(tiny_net: LabNetwork) -> None:
    quiet(tiny_net)
    targets = [lk.probe_address for lk in tiny_net.links.values()]

    async def body(responder: ProbeResponder, port: int) -> None:
        bench = await measure_probe_rps(targets, port=port, duration=0.5, window=200)
        assert bench.replies > 100
        assert bench.lost == 0
        assert bench.rps > 200

    with_responder(tiny_net, True, body)
