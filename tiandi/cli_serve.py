"""``tiandi serve``: the API (pollers and the failover engine join it as they land)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from inventory.errors import TiandiError
from tiandi.cli import fail, settings_of
from tiandi.wiring import build_api


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="bind address (TIANDI_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (TIANDI_API_PORT)")] = None,
) -> None:
    """Run the Tiandi API server."""
    settings = settings_of(ctx)
    try:
        app = build_api(settings)
    except TiandiError as err:
        raise fail(err, 2) from err
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )
