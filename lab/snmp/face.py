"""The SNMP face of the lab: a UDP socket per device, on that device's own loopback address.

Addressing: each device answers on ``Device.mgmt_address:Device.snmp_port`` — a ``127.x.y.z``
address (Linux routes all of 127.0.0.0/8 to ``lo``, no set-up needed) and port 161 as root, or a
high port in tests. Only loopback addresses are ever bound; a non-loopback management address
is refused, since the lab must never answer on a real network. One socket per device costs one
file descriptor per device (6,500 for the national network); ``serve_snmp`` raises the soft
RLIMIT_NOFILE to what it needs (the hard limit here is 20,000).

The sockets are non-blocking and registered straight with the running asyncio loop
(``loop.add_reader``): a readable socket is drained and each datagram answered synchronously
with ``sendto`` — no transport or protocol objects, no per-packet task. A powered-off device's
socket stays open but its packets are read and dropped, so clients time out as they would.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import resource
import socket
import time
from collections.abc import Iterable, Mapping
from types import TracebackType

from inventory.errors import TiandiError
from lab.snmp.agent import AgentStats, DeviceAgent, SnmpAgent
from lab.snmp.usm import SnmpCredentialLike, UnsupportedCredentials
from lab.snmp.views import MAX_MESSAGE_SIZE, VIEWS, device_info, satellite_links
from lab.state import LabNetwork

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

RECV_BUFFER = 65_535
DRAIN_PER_WAKEUP = 64  # datagrams read per readiness event before yielding to the loop
FD_HEADROOM = 512
BOOTS_EPOCH = 1_700_000_000  # engineBoots start at (wall-clock seconds - this), see below


class SnmpFaceError(TiandiError):
    """The SNMP face cannot start (address refused or taken, credentials unusable, fd limit)."""


def initial_engine_boots(now_wall: float | None = None) -> int:
    """snmpEngineBoots for a lab start: grows across lab restarts, as a device's NVRAM would.

    USM clients keep (boots, time) per engine and refuse a peer whose time runs backwards under
    the same boots, so a restarted lab must not reuse the previous run's boots value.
    """
    wall = time.time() if now_wall is None else now_wall
    return max(1, int(wall) - BOOTS_EPOCH)


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to at least ``needed`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        limit = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        soft = limit
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise SnmpFaceError(
            f"the SNMP face needs {needed} file descriptors but the hard limit is {hard}; "
            "raise it (ulimit -Hn, or LimitNOFILE= in the systemd unit)"
        )
    return soft


def _open_fds() -> int:
    """File descriptors this process holds now (other faces may have taken thousands)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


class SnmpFace:
    """Running SNMP agents for a set of lab devices. ``close()`` stops them all."""

    def __init__(self, net: LabNetwork, agent: SnmpAgent, loop: asyncio.AbstractEventLoop) -> None:
        self.net = net
        self.agent = agent
        self._loop = loop
        self._sockets: dict[str, socket.socket] = {}
        self.devices: dict[str, DeviceAgent] = {}
        self.endpoints: dict[str, tuple[str, int]] = {}
        self.closed = False

    @property
    def stats(self) -> AgentStats:
        return self.agent.stats

    def _add(self, dev: DeviceAgent) -> None:
        d = dev.device
        address = (d.mgmt_address, d.snmp_port)
        try:
            if not ipaddress.ip_address(d.mgmt_address).is_loopback:
                raise SnmpFaceError(
                    f"device {d.name}: management address {d.mgmt_address} is not a loopback "
                    "address; the lab only answers on 127.0.0.0/8"
                )
        except ValueError as err:
            raise SnmpFaceError(f"device {d.name}: bad address {d.mgmt_address!r}") from err
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
        except OSError as err:
            sock.close()
            hint = (
                "another device or process holds it"
                if err.errno == errno.EADDRINUSE
                else "ports below 1024 need root"
                if err.errno == errno.EACCES
                else err.strerror
            )
            raise SnmpFaceError(
                f"device {d.name}: cannot bind SNMP on {address[0]}:{address[1]}: {hint}"
            ) from err
        self._loop.add_reader(sock.fileno(), self._readable, sock, dev)
        self._sockets[d.name] = sock
        self.devices[d.name] = dev
        self.endpoints[d.name] = address

    def _readable(self, sock: socket.socket, dev: DeviceAgent) -> None:
        agent = self.agent
        stats = agent.stats
        for _ in range(DRAIN_PER_WAKEUP):
            try:
                data, peer = sock.recvfrom(RECV_BUFFER)
            except BlockingIOError:
                return
            except OSError as err:
                stats.drops["recv_error"] += 1
                log.debug("device %s: recvfrom failed: %s", dev.device.name, err)
                return
            try:
                reply = agent.handle(dev, data)
            except Exception:  # a bug in a view must cost one answer, not the agent
                stats.drops["internal_error"] += 1
                log.exception("device %s: SNMP request failed inside the agent", dev.device.name)
                continue
            if reply is None:
                continue
            try:
                sock.sendto(reply, peer)
            except OSError as err:
                stats.drops["send_error"] += 1
                log.debug("device %s: sendto %s failed: %s", dev.device.name, peer, err)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in self._sockets.values():
            try:
                self._loop.remove_reader(sock.fileno())
            except (ValueError, RuntimeError) as err:  # loop already closed: nothing to remove
                log.debug("remove_reader: %s", err)
            sock.close()
        self._sockets.clear()

    async def __aenter__(self) -> SnmpFace:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def serve_snmp(
    net: LabNetwork,
    creds: Mapping[str, SnmpCredentialLike],
    *,
    devices: Iterable[str] | None = None,
    max_message_size: int = MAX_MESSAGE_SIZE,
    engine_boots: int | None = None,
) -> SnmpFace:
    """Start an SNMP agent for every device (or those named) that has SNMP credentials.

    ``creds`` maps device name → resolved credentials (any object with the attributes of
    ``lab.snmp.usm.Credentials``). Devices without an entry get no agent (logged). Raises
    ``SnmpFaceError`` naming the device if an address is refused or taken, or a credential
    asks for what the agent does not implement (e.g. DES privacy).
    """
    loop = asyncio.get_running_loop()
    names = list(net.devices) if devices is None else list(devices)
    raise_fd_limit(_open_fds() + len(names) + FD_HEADROOM)
    boots = initial_engine_boots() if engine_boots is None else engine_boots
    sat_links = satellite_links(net)
    face = SnmpFace(net, SnmpAgent(net), loop)
    try:
        for name in names:
            device = net.devices[name]
            cred = creds.get(name)
            if cred is None:
                log.warning("device %s has no SNMP credentials: no SNMP agent", name)
                continue
            info = device_info(
                device, satellite_link=sat_links.get(name), max_message_size=max_message_size
            )
            try:
                dev = DeviceAgent(device, info, VIEWS[device.kind], cred, boots=boots)
            except UnsupportedCredentials as err:
                raise SnmpFaceError(f"device {name}: {err}") from err
            face._add(dev)
    except BaseException:
        face.close()
        raise
    log.info("SNMP face: %d agents", len(face.devices))
    return face
