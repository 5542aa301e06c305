"""Building the running objects from Settings: the one place that knows every package."""

from __future__ import annotations

import logging
import secrets

from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.config import ApiConfig
from api.monitoring_view import MonitoringView
from controllers.failover.service import FailoverService
from inventory.db import make_engine, make_session_factory
from tiandi import migrate
from tiandi.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def signing_key(settings: Settings) -> str:
    key = settings.secret_key.get_secret_value()
    if len(key) >= 32:
        return key
    # Only reachable in development: Settings refuses a short key in production.
    log.warning(
        "no TIANDI_SECRET_KEY set (development mode): using a random key for this run; "
        "login tokens will not survive a restart"
    )
    return secrets.token_urlsafe(48)


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database whose schema is missing or older than this code."""
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    except SQLAlchemyError as err:
        raise ConfigError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{err.__class__.__name__}; check TIANDI_DATABASE_URL"
        ) from err
    heads = migrate.current_heads()
    if set(current) != set(heads):
        raise ConfigError(
            f"database schema is at {', '.join(current) or 'nothing'}, this Tiandi needs "
            f"{', '.join(heads)}: run `tiandi db upgrade`"
        )


def database_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured database, once its schema is known to be current."""
    engine = make_engine(settings.database_url)
    check_schema(engine)
    return make_session_factory(engine)


def build_api(
    settings: Settings,
    sessions: sessionmaker[Session] | None = None,
    monitoring: MonitoringView | None = None,
    failover: FailoverService | None = None,
) -> FastAPI:
    """The API on ``sessions`` (the process's own, so that the API, the monitor view and the
    failover engine share one connection pool), or on sessions of its own."""
    config = ApiConfig(
        secret_key=signing_key(settings), access_token_minutes=settings.access_token_minutes
    )
    return create_app(
        sessions or database_sessions(settings), config, monitoring=monitoring, failover=failover
    )
