"""Run the SNMP face on its own event loop in a background thread.

For synchronous callers — tests driving net-snmp's command-line tools, or a poller test whose
own event loop must not also serve the lab. The face's handlers run on the background loop;
changing the ``LabNetwork`` from another thread is fine for what tests do (attribute writes are
atomic under the GIL), and ``call`` runs anything on the lab's loop when order matters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from lab.snmp.face import SnmpFace, serve_snmp
from lab.snmp.usm import SnmpCredentialLike
from lab.state import LabNetwork

T = TypeVar("T")
START_TIMEOUT_S = 60.0


class BackgroundSnmpFace:
    """``with BackgroundSnmpFace(net, creds) as face:`` — agents answer inside the block."""

    def __init__(
        self,
        net: LabNetwork,
        creds: Mapping[str, SnmpCredentialLike],
        *,
        devices: Iterable[str] | None = None,
    ) -> None:
        self._net = net
        self._creds = creds
        self._devices = None if devices is None else list(devices)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="lab-snmp", daemon=True)
        self.face: SnmpFace | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> SnmpFace:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            serve_snmp(self._net, self._creds, devices=self._devices), self._loop
        )
        try:
            self.face = future.result(timeout=START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self.face

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the lab's loop and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_TIMEOUT_S)

    def stop(self) -> None:
        if self.face is not None:
            face = self.face
            self.call(face.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SnmpFace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
