"""Request body size limits, enforced before anything parses the body.

A request announcing a larger body (``Content-Length``) is answered 413 at once; a body sent
without a length (chunked) is counted as it streams in and cut off with a 413 when it passes the
limit. Both answers are JSON, like every other error of the API.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes ({limit / (1 << 20):g} MiB); "
        "send less at a time"
    )


class BodyLimit:
    """ASGI middleware: ``limit`` bytes per request body, or ``per_path[path]`` for those paths."""

    def __init__(self, app: ASGIApp, *, limit: int, per_path: Mapping[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.per_path = dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.limit)
        announced = Headers(scope=scope).get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            response = JSONResponse({"detail": _too_large(limit), "problems": []}, 413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the body read: FastAPI passes HTTPExceptions on unchanged,
                    # and the app's handler answers it as JSON.
                    raise HTTPException(status_code=413, detail=_too_large(limit))
            return message

        await self.app(scope, counting_receive, send)
