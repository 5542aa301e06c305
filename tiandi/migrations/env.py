"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from alembic import context

from inventory.db import make_engine
from tiandi.dbschema import all_metadata

config = context.config
target_metadata = all_metadata()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "alembic_config() always sets sqlalchemy.url"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
