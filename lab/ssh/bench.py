"""How many concurrent SSH sessions the lab serves: a client-side measurement.

``measure_ssh_sessions`` opens ``sessions`` interactive shells (with a pty, like netmiko) over
the given targets, keeps them all open, then has every one run a command at the same moment and
counts the sessions that answered in time. It is a client: run it in another process than the
lab for a clean figure (in the same process the clients' key exchanges and parsing share the
lab's CPU, so the figure is a lower bound).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncssh

PROMPT = re.compile(r"[>#]\s*$")


@dataclass(frozen=True, slots=True)
class SshTarget:
    host: str
    port: int
    username: str
    password: str

    def __repr__(self) -> str:
        return f"SshTarget({self.host}:{self.port}, user={self.username!r}, password=REDACTED)"


@dataclass(frozen=True, slots=True)
class SessionBench:
    requested: int
    opened: int  # shells open at the same time
    served: int  # of those, how many answered the command while all were open
    connect_p50_s: float
    connect_p95_s: float
    command_p50_s: float
    command_p95_s: float
    elapsed_s: float
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Shell:
    conn: asyncssh.SSHClientConnection
    proc: asyncssh.SSHClientProcess[str]


async def _read_prompt(proc: asyncssh.SSHClientProcess[str], timeout: float) -> str:
    text = ""
    deadline = time.monotonic() + timeout
    while not PROMPT.search(text):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no prompt")
        chunk = await asyncio.wait_for(proc.stdout.read(65536), left)
        if not chunk:
            raise ConnectionError("session closed")
        text += chunk
    return text


async def _open(target: SshTarget, timeout: float) -> _Shell:
    conn = await asyncio.wait_for(
        asyncssh.connect(
            target.host,
            target.port,
            username=target.username,
            password=target.password,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
            config=None,
            preferred_auth="password",
        ),
        timeout,
    )
    try:
        proc = await conn.create_process(term_type="vt100")
        await _read_prompt(proc, timeout)
        proc.stdin.write("terminal length 0\n")
        await _read_prompt(proc, timeout)
    except BaseException:
        conn.abort()
        raise
    return _Shell(conn, proc)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_ssh_sessions(
    targets: Sequence[SshTarget],
    sessions: int,
    *,
    command: str = "show ip interface brief",
    connect_concurrency: int = 32,
    timeout: float = 30.0,
) -> SessionBench:
    """Open ``sessions`` shells round-robin over ``targets``, then run ``command`` on all."""
    if not targets:
        raise ValueError("measure_ssh_sessions needs at least one target")
    started = time.monotonic()
    gate = asyncio.Semaphore(connect_concurrency)
    errors: Counter[str] = Counter()
    connect_times: list[float] = []

    async def open_one(i: int) -> _Shell | None:
        async with gate:
            t0 = time.monotonic()
            try:
                shell = await _open(targets[i % len(targets)], timeout)
            except (OSError, asyncssh.Error, TimeoutError, ConnectionError) as err:
                errors[type(err).__name__] += 1
                return None
            connect_times.append(time.monotonic() - t0)
            return shell

    opened = [s for s in await asyncio.gather(*(open_one(i) for i in range(sessions))) if s]
    command_times: list[float] = []

    async def run(shell: _Shell) -> bool:
        t0 = time.monotonic()
        try:
            shell.proc.stdin.write(command + "\n")
            await _read_prompt(shell.proc, timeout)
        except (OSError, asyncssh.Error, TimeoutError, ConnectionError) as err:
            errors[type(err).__name__] += 1
            return False
        command_times.append(time.monotonic() - t0)
        return True

    try:
        served = sum(await asyncio.gather(*(run(s) for s in opened)))
    finally:
        for shell in opened:
            shell.conn.close()
        await asyncio.gather(*(s.conn.wait_closed() for s in opened), return_exceptions=True)
    return SessionBench(
        requested=sessions,
        opened=len(opened),
        served=served,
        connect_p50_s=statistics.median(connect_times) if connect_times else 0.0,
        connect_p95_s=_pct(connect_times, 0.95),
        command_p50_s=statistics.median(command_times) if command_times else 0.0,
        command_p95_s=_pct(command_times, 0.95),
        elapsed_s=time.monotonic() - started,
        errors=dict(errors),
    )
