"""Running blocking SSH work from asyncio: a bounded thread pool, deadlines, per-device locks.

``SshRunner.run(target, device_type, job)`` opens a session in a worker thread, runs ``job``
(a plain function taking the ``CliSession``) on it, and closes it; the event loop only awaits.
At most ``workers`` sessions run at once; callers beyond that wait on a semaphore, so queueing
never eats into an operation's deadline. When a deadline passes, the session is aborted from
the loop (``SessionHandle.abort`` closes the transport at once) and then ``DriverTimeout`` is
raised: nothing is left half-open (habit 7).

Sessions are opened per operation, not kept: a login costs ~0.3 s on the lab, a whole
move-and-verify one session (see ``cisco_ios``), so keeping sessions would save little and
would hold vty lines (IOS has five) and go stale exactly when devices are failing.

``lock(device)`` is the one-change-at-a-time lock per device name; drivers take it around
every operation that changes a device.

Credentials are resolved in the worker thread at connect time (``SecretRef.resolve`` may read
a file) and live only for that login. Host keys come from ``KnownHostsStore``; with
``HostKeyPolicy.TRUST_ON_FIRST_USE`` an unknown key is recorded with a WARNING every time.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from controllers.drivers.base import DeviceTarget
from controllers.drivers.known_hosts import (
    HostKey,
    KnownHostKeyConflict,
    KnownHostsStore,
    host_entry,
)
from controllers.drivers.transport import (
    CliSession,
    ConnectRequest,
    HostKeyCheck,
    Login,
    SessionHandle,
    Timeouts,
    fetch_host_key,
    open_session,
)
from controllers.errors import AuthenticationFailed, DriverTimeout, HostKeyMismatch

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

T = TypeVar("T")

Opener = Callable[[ConnectRequest, SessionHandle], CliSession]
KeyFetcher = Callable[[str, str, int, float], HostKey]


class HostKeyPolicy(enum.StrEnum):
    STRICT = "strict"  # unknown keys refused; the operator records them with ``trust``
    TRUST_ON_FIRST_USE = "tofu"  # unknown keys recorded (WARNING each time); labs only


@dataclass(frozen=True, slots=True)
class SshSettings:
    """What the composition root tunes (from ``tiandi.settings``)."""

    # Measured on the lab (2 cores shared with the lab): 200 routers moved at once took
    # 10.2 s with 16 workers, 9.1 s with 32, 6.1 s with 64 — logins are CPU-bound key exchanges.
    workers: int = 64
    timeouts: Timeouts = field(default_factory=Timeouts)
    operation_timeout_s: float = 30.0  # backstop for one whole job (login + every command)
    host_key_policy: HostKeyPolicy = HostKeyPolicy.STRICT

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("SSH workers must be at least 1")
        if self.operation_timeout_s <= 0:
            raise ValueError("the SSH operation timeout must be positive")


class SshRunner:
    """The one place SSH work is scheduled. Build once (composition root); ``close()`` at exit."""

    def __init__(
        self,
        known_hosts: KnownHostsStore,
        settings: SshSettings | None = None,
        *,
        opener: Opener = open_session,
        fetch_key: KeyFetcher = fetch_host_key,
    ) -> None:
        self.known_hosts = known_hosts
        self.settings = settings or SshSettings()
        self._opener = opener
        self._fetch_key = fetch_key
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="tiandi-ssh"
        )
        self._slots = asyncio.Semaphore(self.settings.workers)
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"SshRunner(workers={self.settings.workers}, "
            f"host_keys={self.settings.host_key_policy.value}, store={self.known_hosts!r})"
        )

    def lock(self, device: str) -> asyncio.Lock:
        """The change lock of one device (created on first use)."""
        lock = self._locks.get(device)
        if lock is None:
            lock = self._locks[device] = asyncio.Lock()
        return lock

    async def run(
        self,
        target: DeviceTarget,
        device_type: str,
        job: Callable[[CliSession], T],
        *,
        operation: str,
        timeout_s: float | None = None,
    ) -> T:
        """Open a session on ``target``, run ``job`` on it in a worker thread, close it."""
        if self._closed:
            raise RuntimeError("the SSH runner is closed")
        deadline = timeout_s if timeout_s is not None else self.settings.operation_timeout_s
        handle = SessionHandle()
        async with self._slots:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, self._work, target, device_type, job, handle)
            try:
                return await asyncio.wait_for(future, deadline)
            except TimeoutError:
                handle.abort()  # close the transport first, then say so
                raise DriverTimeout(target.name, operation, deadline) from None
            except asyncio.CancelledError:
                handle.abort()
                raise

    def _work(
        self,
        target: DeviceTarget,
        device_type: str,
        job: Callable[[CliSession], T],
        handle: SessionHandle,
    ) -> T:
        login = _login(target)
        request = ConnectRequest(
            device=target.name,
            host=target.host,
            port=target.port,
            device_type=device_type,
            login=login,
            host_keys=self._host_key_check(target),
            timeouts=self.settings.timeouts,
        )
        session = self._opener(request, handle)
        try:
            return job(session)
        finally:
            session.close()

    def _host_key_check(self, target: DeviceTarget) -> HostKeyCheck:
        name = host_entry(target.host, target.port)
        learn: Callable[[HostKey], None] | None = None
        if self.settings.host_key_policy is HostKeyPolicy.TRUST_ON_FIRST_USE:

            def learn(key: HostKey) -> None:
                self.known_hosts.add(name, key)
                log.warning(
                    "TRUST-ON-FIRST-USE: recorded the SSH host key of %s (%s) without an "
                    "operator's check: %s %s. Turn trust-on-first-use off outside a lab.",
                    target.name,
                    name,
                    key.key_type,
                    key.fingerprint,
                )

        return HostKeyCheck(
            name=name,
            known=self.known_hosts.lookup(name),
            revoked=self.known_hosts.revoked(name),
            learn=learn,
        )

    async def trust(self, target: DeviceTarget, *, replace: bool = False) -> HostKey:
        """The operator's act: read the key ``target`` offers now and record it.

        A different key already recorded is refused (``HostKeyMismatch``) unless ``replace``
        (the device was replaced or re-keyed and the operator checked the fingerprint).
        """
        name = host_entry(target.host, target.port)
        timeout = self.settings.timeouts.connect_s
        async with self._slots:
            loop = asyncio.get_running_loop()
            key = await loop.run_in_executor(
                self._pool, self._fetch_key, target.name, target.host, target.port, timeout
            )
        try:
            added = await asyncio.to_thread(self.known_hosts.add, name, key, replace=replace)
        except KnownHostKeyConflict:
            expected = ", ".join(k.fingerprint for k in self.known_hosts.lookup(name))
            raise HostKeyMismatch(target.name, name, key.fingerprint, expected) from None
        if added:
            log.warning(
                "SSH host key of %s (%s) TRUSTED by operator action%s: %s %s",
                target.name,
                name,
                " (replacing the previous key)" if replace else "",
                key.key_type,
                key.fingerprint,
            )
        else:
            log.info("SSH host key of %s (%s) was already trusted", target.name, name)
        return key

    async def close(self) -> None:
        """Stop taking work; wait for running sessions to end."""
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


def _login(target: DeviceTarget) -> Login:
    """Read the target's secrets now (SecretUnavailable names the reference, not the value)."""
    if not target.username:
        raise AuthenticationFailed(target.name, "its SSH profile has no username")
    password = target.password.resolve() if target.password is not None else None
    key = target.private_key.resolve() if target.private_key is not None else None
    if password is None and key is None:
        raise AuthenticationFailed(target.name, "its SSH profile has no password and no key")
    return Login(target.username, password, key)


class SshDriver:
    """Shared plumbing for drivers: the target, the runner, the netmiko device type."""

    device_type: ClassVar[str] = "generic"

    def __init__(self, target: DeviceTarget, runner: SshRunner) -> None:
        self._target = target
        self._runner = runner

    @property
    def target(self) -> DeviceTarget:
        return self._target

    @property
    def name(self) -> str:
        return self._target.name

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._target.name!r}, {self._target.host}:{self._target.port})"
        )

    async def _run(
        self, job: Callable[[CliSession], T], *, operation: str, timeout_s: float | None = None
    ) -> T:
        return await self._runner.run(
            self._target, self.device_type, job, operation=operation, timeout_s=timeout_s
        )
