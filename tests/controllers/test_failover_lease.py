"""One failover engine per database: the second is refused at once, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controllers.failover.lease import EngineLease, LeaseHeld
from inventory.db import make_engine
from tiandi.failover_runtime import FailoverOptions, FailoverRuntime, FailoverStartFailed
from tiandi.settings import Settings


def test_a_second_lease_is_refused_until_the_first_is_released(database_url: str) -> None:
    first_engine, second_engine = make_engine(database_url), make_engine(database_url)
    try:
        lease = EngineLease.acquire(first_engine)
        with pytest.raises(LeaseHeld) as refused:
            EngineLease.acquire(second_engine)
        message = str(refused.value)
        assert "another failover engine holds the lease on" in message
        assert "--no-failover" in message
        if database_url.startswith("sqlite"):
            assert "pid " in message  # who holds it, from the lock file
        else:
            assert "held by server pid " in message  # from pg_locks and pg_stat_activity
        lease.release()
        again = EngineLease.acquire(second_engine)
        again.release()
    finally:
        first_engine.dispose()
        second_engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_second_serve_engine_does_not_start(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(environment="development")
    first = FailoverRuntime(settings, session_factory, FailoverOptions(data_dir=tmp_path / "a"))
    first.start(timeout_s=60)
    try:
        second = FailoverRuntime(
            settings, session_factory, FailoverOptions(data_dir=tmp_path / "b")
        )
        with pytest.raises(FailoverStartFailed, match="another failover engine holds the lease"):
            second.start(timeout_s=60)
        second.stop()
    finally:
        first.stop()
    # stopped: the lease is free again
    third = FailoverRuntime(settings, session_factory, FailoverOptions(data_dir=tmp_path / "c"))
    third.start(timeout_s=60)
    third.stop()
