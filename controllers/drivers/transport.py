"""The SSH transport: the one module that imports netmiko and paramiko. Blocking; thread only.

``open_session`` logs in with netmiko and hands back a ``NetmikoSession``, a small typed
``CliSession`` (send a command, run configuration lines, close) that turns every netmiko and
paramiko failure into a ``controllers.errors`` error, closing the session first (habit 7).

Host keys: the paramiko client netmiko uses is ours (``_VerifyingClient``). It is loaded with
the keys Tiandi's store holds for this host only (never ``~/.ssh/known_hosts``), so paramiko
prefers that key type and refuses a different key (``BadHostKeyException`` →
``HostKeyMismatch``); an unknown host goes to our missing-key policy: refused
(``HostKeyUnknown``, paramiko's ``RejectPolicy``) or, with trust-on-first-use, recorded by the
caller's ``learn`` callback. Both checks run before any credential is sent. netmiko would
flatten these paramiko errors into a timeout; raising our own types keeps them apart.

``SessionHandle.abort()`` may be called from another thread (the event loop, on a deadline):
it closes the SSH transport and detaches netmiko's channel, so a worker blocked in a read
fails at once instead of waiting out netmiko's own timer.
"""

from __future__ import annotations

import base64
import io
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import paramiko  # type: ignore[import-untyped, unused-ignore]
from netmiko import BaseConnection
from netmiko.exceptions import (
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadException,
    ReadTimeout,
    WriteException,
)
from netmiko.ssh_dispatcher import CLASS_MAPPER

from controllers.drivers.known_hosts import HostKey
from controllers.errors import (
    AuthenticationFailed,
    CommandRejected,
    DeviceUnreachable,
    DriverTimeout,
    HostKeyError,
    HostKeyMismatch,
    HostKeyUnknown,
    NoDriver,
    UnexpectedOutput,
)

T = TypeVar("T")


# ---- what a login needs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``connect_s`` bounds the TCP connect, the SSH banner and authentication, each;
    ``command_s`` bounds one command's answer (and the wait for the first prompt)."""

    connect_s: float = 5.0
    command_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Login:
    """Resolved credentials; never printed."""

    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, secrets=REDACTED)"


@dataclass(frozen=True, slots=True)
class HostKeyCheck:
    """How to judge the host key a device offers.

    ``name`` is the known_hosts name (``[host]:port``); ``known``/``revoked`` come from the
    store; ``learn`` (trust-on-first-use only) records an unknown key, else it is refused.
    """

    name: str
    known: tuple[HostKey, ...]
    revoked: tuple[HostKey, ...] = ()
    learn: Callable[[HostKey], None] | None = None


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    device: str
    host: str
    port: int
    device_type: str
    login: Login
    host_keys: HostKeyCheck
    timeouts: Timeouts = Timeouts()


@dataclass(frozen=True, slots=True)
class ConfigStep:
    command: str
    response: str


@dataclass(frozen=True, slots=True)
class ConfigTranscript:
    """Configuration lines as sent; stops at the first one the device rejects (``failed``)."""

    steps: tuple[ConfigStep, ...]
    failed: ConfigStep | None = None
    error: str | None = None

    @property
    def sent(self) -> tuple[str, ...]:
        return tuple(s.command for s in self.steps)

    @property
    def applied(self) -> tuple[str, ...]:
        """The lines the device accepted."""
        return tuple(s.command for s in self.steps if s is not self.failed)


class CliSession(Protocol):
    """One SSH login, driven from one worker thread at a time."""

    @property
    def device(self) -> str: ...

    def send(self, command: str, *, expect: str | None = None) -> str:
        """Run ``command``; its output without the echo and the prompt."""
        ...

    def configure(self, commands: Sequence[str], error: re.Pattern[str]) -> ConfigTranscript:
        """Enter configuration mode, send each line, stop at the first matching ``error``."""
        ...

    def close(self) -> None: ...


# ---- aborting from another thread ------------------------------------------------------------


class SessionHandle:
    """Lets the event loop kill a session a worker thread is blocked on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._conn: BaseConnection | None = None
        self.aborted = False

    def attach_client(self, client: Any) -> None:
        with self._lock:
            self._client = client
            if self.aborted:
                client.close()
                raise ConnectionAbortedError("the operation was cancelled before it connected")

    def attach_connection(self, conn: BaseConnection) -> None:
        with self._lock:
            self._conn = conn
        if self.aborted:
            self.abort()

    def abort(self) -> None:
        """Close the transport now (thread-safe, idempotent)."""
        with self._lock:
            self.aborted = True
            client, conn = self._client, self._conn
        if conn is not None:
            channel = getattr(conn, "channel", None)
            if channel is not None:
                channel.remote_conn = None  # the next read raises instead of polling on
        if client is not None:
            client.close()

    def transport_active(self) -> bool:
        with self._lock:
            client = self._client
        if client is None:
            return False
        transport = client.get_transport()
        return transport is not None and bool(transport.is_active())


# ---- host-key verification ---------------------------------------------------------------------


def _offered(key: Any) -> HostKey:
    return HostKey(str(key.get_name()), str(key.get_base64()))


class _Policy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc, unused-ignore]
    """Unknown host: refuse (RejectPolicy), or hand it to ``learn`` (trust-on-first-use)."""

    def __init__(self, device: str, check: HostKeyCheck) -> None:
        self._device = device
        self._check = check

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        offered = _offered(key)
        if offered in self._check.revoked:
            raise HostKeyMismatch(self._device, hostname, offered.fingerprint, "a REVOKED key")
        if self._check.known:  # recorded, but of a type paramiko could not load: not a match
            expected = ", ".join(k.fingerprint for k in self._check.known)
            raise HostKeyMismatch(self._device, hostname, offered.fingerprint, expected)
        if self._check.learn is None:
            raise HostKeyUnknown(self._device, hostname, offered.fingerprint)
        self._check.learn(offered)


class _VerifyingClient(paramiko.SSHClient):  # type: ignore[misc, unused-ignore]
    """paramiko's client with only Tiandi's recorded keys for this host, and our policy."""

    def __init__(self, device: str, check: HostKeyCheck) -> None:
        super().__init__()
        self._device = device
        self._check = check
        keys = self.get_host_keys()
        for known in check.known:
            try:
                key = paramiko.PKey.from_type_string(known.key_type, _b64(known.blob))
            except (paramiko.SSHException, ValueError, TypeError):
                continue  # a key type this paramiko cannot load cannot match either
            keys.add(check.name, known.key_type, key)
        self.set_missing_host_key_policy(_Policy(device, check))

    def connect(self, hostname: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().connect(hostname, *args, **kwargs)
        except paramiko.BadHostKeyException as err:
            self.close()
            expected = ", ".join(k.fingerprint for k in self._check.known) or "?"
            raise HostKeyMismatch(
                self._device, self._check.name, _offered(err.key).fingerprint, expected
            ) from None
        except HostKeyError:
            self.close()
            raise


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _load_private_key(device: str, text: str) -> Any:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise AuthenticationFailed(
        device,
        "the SSH profile's private key cannot be read (expected an unencrypted OpenSSH or PEM "
        "Ed25519/ECDSA/RSA key); fix the secret it references",
    )


# ---- netmiko, with our client ----------------------------------------------------------------

_PENDING = threading.local()  # the request being connected on this thread (read by the hook)
_CLASSES: dict[str, type[BaseConnection]] = {}
_CLASSES_LOCK = threading.Lock()


def _build_ssh_client(self: BaseConnection) -> Any:
    request: ConnectRequest = _PENDING.request
    handle: SessionHandle = _PENDING.handle
    client = _VerifyingClient(request.device, request.host_keys)
    handle.attach_client(client)
    return client


def _connection_class(device: str, device_type: str) -> type[BaseConnection]:
    with _CLASSES_LOCK:
        cls = _CLASSES.get(device_type)
        if cls is None:
            base = CLASS_MAPPER.get(device_type)
            if base is None or "_telnet" in device_type or "_serial" in device_type:
                raise NoDriver(device, f"netmiko has no SSH device type {device_type!r}")
            cls = cast(
                "type[BaseConnection]",
                type(f"Tiandi{base.__name__}", (base,), {"_build_ssh_client": _build_ssh_client}),
            )
            _CLASSES[device_type] = cls
        return cls


def _first_line(err: BaseException) -> str:
    """The line of an exception's message that says what happened (netmiko wraps paramiko's
    reason in a paragraph of generic advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith("A paramiko SSHException") and len(lines) > 1:
        return lines[1].rstrip(".:")
    return lines[0].rstrip(".:")


def open_session(request: ConnectRequest, handle: SessionHandle) -> NetmikoSession:
    """Log in (blocking). Raises a ``DriverError``; nothing stays open when it does."""
    t = request.timeouts
    login = request.login
    cls = _connection_class(request.device, request.device_type)
    pkey = _load_private_key(request.device, login.private_key) if login.private_key else None
    where = f"{request.host}:{request.port}"
    _PENDING.request, _PENDING.handle = request, handle
    try:
        conn = cls(
            device_type=request.device_type,
            host=request.host,
            port=request.port,
            username=login.username,
            password=login.password or "",
            pkey=pkey,
            use_keys=False,
            allow_agent=False,
            ssh_strict=True,
            system_host_keys=False,
            alt_host_keys=False,
            conn_timeout=t.connect_s,
            auth_timeout=t.connect_s,
            banner_timeout=t.connect_s,
            blocking_timeout=t.command_s,
            read_timeout_override=t.command_s,
            session_timeout=t.command_s,
            fast_cli=True,
            encoding="utf-8",
        )
    except HostKeyError:
        handle.abort()
        raise
    except NetmikoAuthenticationException:
        handle.abort()
        raise AuthenticationFailed(
            request.device,
            f"{where} refused user {login.username!r} with the SSH profile's "
            f"{'key' if pkey is not None else 'password'}; check the profile's secret and the "
            "device's local users/AAA",
        ) from None
    except ReadTimeout:
        handle.abort()
        raise DriverTimeout(
            request.device, "login (waiting for the first prompt)", t.command_s
        ) from None
    except (NetmikoTimeoutException, ReadException, OSError, EOFError, paramiko.SSHException) as e:
        handle.abort()
        if handle.aborted and isinstance(e, ConnectionAbortedError):
            raise DeviceUnreachable(request.device, "the login was cancelled") from None
        raise DeviceUnreachable(
            request.device,
            f"no SSH session to {where}: {_first_line(e)}; check that the device is powered, "
            "reachable on its management address, and that the inventory port is right",
        ) from None
    except ValueError as err:  # netmiko: "Unable to find prompt" and friends
        handle.abort()
        raise UnexpectedOutput(request.device, "login", _first_line(err)) from None
    finally:
        _PENDING.request = _PENDING.handle = None
    handle.attach_connection(conn)
    return NetmikoSession(request.device, conn, handle, t)


class NetmikoSession:
    """``CliSession`` over a netmiko connection. Any failure closes the session, then raises."""

    def __init__(
        self, device: str, conn: BaseConnection, handle: SessionHandle, timeouts: Timeouts
    ) -> None:
        self._device = device
        self._conn = conn
        self._handle = handle
        self._timeouts = timeouts
        self._closed = False

    @property
    def device(self) -> str:
        return self._device

    def __repr__(self) -> str:
        return f"NetmikoSession({self._device!r}, closed={self._closed})"

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        if self._closed:
            raise DeviceUnreachable(self._device, f"the session is closed (before {what})")
        try:
            return call()
        except ReadTimeout:
            alive = self._handle.transport_active() and not self._handle.aborted
            self._kill()
            if alive:
                raise DriverTimeout(self._device, what, self._timeouts.command_s) from None
            raise DeviceUnreachable(
                self._device, f"the SSH session was lost during {what}"
            ) from None
        except (ReadException, WriteException, OSError, EOFError, paramiko.SSHException) as err:
            self._kill()
            raise DeviceUnreachable(
                self._device,
                f"the SSH session was lost during {what} ({_first_line(err)}); the device may "
                "have rebooted or the path to it failed",
            ) from None

    def send(self, command: str, *, expect: str | None = None) -> str:
        def call() -> str:
            out = self._conn.send_command(
                command,
                expect_string=expect,
                read_timeout=self._timeouts.command_s,
                strip_prompt=True,
                strip_command=True,
            )
            return str(out)

        return _normalise(self._guard(f"{command!r}", call))

    def configure(self, commands: Sequence[str], error: re.Pattern[str]) -> ConfigTranscript:
        conn = self._conn
        steps: list[ConfigStep] = []
        try:
            self._guard("configure terminal", lambda: conn.config_mode())
        except ValueError as err:  # netmiko: "Failed to enter configuration mode"
            raise CommandRejected(self._device, "configure terminal", _first_line(err)) from None
        prompt = f"(?:{re.escape(conn.base_prompt)}.*$|#.*$)"
        failed: ConfigStep | None = None
        problem: str | None = None
        for command in commands:

            def one(command: str = command) -> str:
                conn.write_channel(conn.normalize_cmd(command))
                conn.read_until_pattern(
                    pattern=re.escape(command.strip()), read_timeout=self._timeouts.command_s
                )
                return str(
                    conn.read_until_pattern(
                        pattern=prompt, read_timeout=self._timeouts.command_s, re_flags=re.M
                    )
                )

            response = _strip_prompt(_normalise(self._guard(f"{command!r}", one)))
            step = ConfigStep(command, response)
            steps.append(step)
            match = error.search(response)
            if match is not None:
                failed, problem = step, response.strip()
                break
        self._guard("end", lambda: conn.exit_config_mode())
        return ConfigTranscript(tuple(steps), failed, problem)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.disconnect()  # netmiko swallows its own errors here
        finally:
            self._handle.abort()

    def _kill(self) -> None:
        self._closed = True
        self._handle.abort()
        self._conn.disconnect()  # netmiko swallows errors here: the session is already broken


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strip_prompt(text: str) -> str:
    """The device's answer to one configuration line: drop the echo's line end and the prompt."""
    lines = text.split("\n")
    if lines and lines[-1].rstrip().endswith(("#", ">")):
        lines = lines[:-1]
    return "\n".join(lines).strip("\n")


def fetch_host_key(device: str, host: str, port: int, timeout_s: float) -> HostKey:
    """The host key ``host:port`` offers (key exchange only: no authentication). Blocking."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as err:
        raise DeviceUnreachable(
            device, f"cannot reach {host}:{port} to read its host key: {err.strerror or err}"
        ) from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout_s
    try:
        transport.start_client(timeout=timeout_s)
        return _offered(transport.get_remote_server_key())
    except (paramiko.SSHException, OSError, EOFError) as err:
        raise DeviceUnreachable(
            device, f"{host}:{port} did not complete an SSH key exchange: {_first_line(err)}"
        ) from None
    finally:
        transport.close()
        sock.close()
