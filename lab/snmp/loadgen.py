"""How many GET responses per second the lab's SNMP agents serve, measured from outside.

The load comes from separate processes (spawned, so they share nothing with the agent's event
loop) that send pre-encoded requests over raw UDP with a fixed window of requests in flight,
round-robin over the target devices, and count the valid responses. net-snmp's tools and pysnmp
are far too slow to load an agent: the generator must not be what is measured.

- v2c: one encoded GetRequest per target (3 varbinds), request-id varied per send.
- v3 authPriv: the generator discovers each target's engine (ID, boots, time), localises the
  keys and pre-computes a batch of authenticated, encrypted GetRequests per target (different
  msgID/request-id each), then replays them round-robin within the 150 s time window.

``measure_snmp_rps`` is an ``async`` function so it can run inside a process that also serves
the lab (the bench does exactly that): the waiting happens in an executor.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import select
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from inventory.enums import SnmpVersion
from lab.snmp import ber, client, codec, oids, usm
from lab.snmp.ber import DecodeError, Oid
from lab.snmp.client import EngineInfo
from lab.snmp.usm import Credentials

# What a poller reads every cycle from a router: uptime and the HC counters of interface 1.
DEFAULT_OIDS: tuple[Oid, ...] = (
    (*oids.SYS_UPTIME, 0),
    (*oids.IF_HC_IN_OCTETS, 1),
    (*oids.IF_HC_OUT_OCTETS, 1),
)
V3_MESSAGES_PER_TARGET = 8
DISCOVERY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LoadTarget:
    address: str
    port: int
    creds: Credentials


@dataclass(frozen=True, slots=True)
class LoadResult:
    version: str
    devices: int
    seconds: float
    sent: int
    received: int  # valid responses
    invalid: int  # replies that were not a good response (reports, errors, garbage)
    stalls: int  # times the whole window timed out

    @property
    def rps(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def discover(sock: socket.socket, peer: tuple[str, int], msg_id: int) -> EngineInfo:
    """(engine ID, boots, time) of the agent at ``peer`` (blocking)."""
    sock.sendto(client.v3_discovery(msg_id), peer)
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65_535)
        got_id, _pdu, engine = client.decode_reply(data, None)
        if got_id == msg_id and engine is not None:
            return engine


# ---- the generator process ------------------------------------------------------------------


def _valid(data: bytes, version: str) -> bool:
    try:
        v, pos, end = codec.message_version(data)
        if version == "v2c":
            pdu = codec.decode_community(data, pos, end, v).pdu
            return (
                pdu.tag == codec.RESPONSE
                and pdu.error_status == 0
                and all(vb.value.tag not in _EXCEPTIONS for vb in pdu.varbinds)
            )
        msg = codec.decode_v3(data, pos, end)
        return bool(msg.flags & codec.FLAG_PRIV) and msg.encrypted is not None
    except DecodeError:
        return False


_EXCEPTIONS = frozenset({ber.NO_SUCH_OBJECT, ber.NO_SUCH_INSTANCE, ber.END_OF_MIB_VIEW})


def _prepare(
    targets: Sequence[LoadTarget], version: str, arcs: Sequence[Oid], seed: int
) -> list[tuple[bytes, tuple[str, int]]]:
    out: list[tuple[bytes, tuple[str, int]]] = []
    if version == "v2c":
        for i, t in enumerate(targets):
            community = t.creds.community or ""
            pdu = client.encode_get(codec.GET, seed + i, arcs)
            out.append((client.v2c_message(community, pdu), (t.address, t.port)))
        return out
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    salt = usm.SaltCounter()
    try:
        msg_id = seed
        for t in targets:
            peer = (t.address, t.port)
            msg_id += 1
            engine_id, boots, engine_time = discover(sock, peer, msg_id)
            keys = usm.usm_keys(t.creds, engine_id)
            for _ in range(V3_MESSAGES_PER_TARGET):
                msg_id += 1
                message = client.v3_message(
                    keys,
                    engine_id=engine_id,
                    boots=boots,
                    engine_time=engine_time,
                    msg_id=msg_id,
                    salt=salt.next(),
                    pdu=client.encode_get(codec.GET, msg_id, arcs),
                )
                out.append((message, peer))
    finally:
        sock.close()
    # Interleave so consecutive sends go to different devices.
    per = V3_MESSAGES_PER_TARGET
    return [out[t * per + k] for k in range(per) for t in range(len(targets))]


def run_generator(
    targets: Sequence[LoadTarget],
    version: str,
    seconds: float,
    window: int,
    warmup: float,
    seed: int,
    arcs: Sequence[Oid] = DEFAULT_OIDS,
) -> LoadResult:
    """Blocking: load ``targets`` for ``warmup + seconds`` and count answers in ``seconds``."""
    messages = _prepare(targets, version, arcs, seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sent = received = invalid = stalls = 0
    inflight = 0
    i = 0
    n = len(messages)
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + seconds
    counting = False
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if not counting and now >= measure_from:
                counting = True
                sent = received = invalid = stalls = 0
            while inflight < window:
                message, peer = messages[i]
                i = (i + 1) % n
                try:
                    sock.sendto(message, peer)
                except BlockingIOError:
                    break
                inflight += 1
                sent += 1
            ready, _, _ = select.select([sock], [], [], 0.2)
            if not ready:
                stalls += 1
                inflight = 0  # the window was lost: start a fresh one
                continue
            while True:
                try:
                    data = sock.recv(65_535)
                except BlockingIOError:
                    break
                inflight = max(0, inflight - 1)
                if _valid(data, version):
                    received += 1
                else:
                    invalid += 1
    finally:
        sock.close()
    return LoadResult(version, len(targets), seconds, sent, received, invalid, stalls)


async def measure_snmp_rps(
    targets: Sequence[LoadTarget],
    *,
    version: str,
    seconds: float = 5.0,
    processes: int = 1,
    window: int = 64,
    warmup: float = 1.0,
) -> LoadResult:
    """GET responses/second the agents at ``targets`` sustain (3 varbinds per GET).

    ``version`` is "v2c" or "v3" (authPriv); every target's credentials must match. The load
    runs in ``processes`` spawned processes, each with ``window`` requests in flight; the caller's
    event loop keeps running (serve the agents from it, or from another process).
    """
    if version not in ("v2c", "v3"):
        raise ValueError("version is 'v2c' or 'v3'")
    wanted = SnmpVersion.V2C if version == "v2c" else SnmpVersion.V3
    if any(t.creds.version is not wanted for t in targets):
        raise ValueError(f"every target needs {version} credentials")
    loop = asyncio.get_running_loop()
    shares = [list(targets[k::processes]) for k in range(processes)]
    shares = [s for s in shares if s]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(shares), mp_context=ctx) as pool:
        futures = [
            loop.run_in_executor(
                pool, run_generator, share, version, seconds, window, warmup, 1_000_000 * (k + 1)
            )
            for k, share in enumerate(shares)
        ]
        results = await asyncio.gather(*futures)
    return LoadResult(
        version=version,
        devices=len(targets),
        seconds=seconds,
        sent=sum(r.sent for r in results),
        received=sum(r.received for r in results),
        invalid=sum(r.invalid for r in results),
        stalls=sum(r.stalls for r in results),
    )


def targets_for(
    endpoints: Mapping[str, tuple[str, int]], creds: Mapping[str, usm.SnmpCredentialLike]
) -> list[LoadTarget]:
    """Load targets for a running face's endpoints (``SnmpFace.endpoints``)."""
    return [
        LoadTarget(
            address,
            port,
            Credentials(
                creds[name].version,
                community=creds[name].community,
                user=creds[name].user,
                auth_protocol=creds[name].auth_protocol,
                auth_key=creds[name].auth_key,
                priv_protocol=creds[name].priv_protocol,
                priv_key=creds[name].priv_key,
            ),
        )
        for name, (address, port) in sorted(endpoints.items())
        if name in creds
    ]
