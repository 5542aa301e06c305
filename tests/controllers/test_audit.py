"""The hash-chained audit trail: appends link up, tampering is found and named, writers never fork.

On SQLite and PostgreSQL, through ``controllers.audit`` and through ``tiandi audit verify``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from controllers import audit
from controllers.audit import GENESIS, AuditRecord


def _append(session: Session, n: int, actor: str = "zhang.wei") -> AuditRecord:
    return audit.append(
        session,
        actor=actor,
        action="device.update",
        target_type="device",
        target=f"gd-r{n}",
        before={"name": f"gd-r{n}", "capacity_kbps": n, "tags": ("a", "b")},
        after={"name": f"gd-r{n}", "capacity_kbps": n + 1, "note": "韶关 ✓", "x": 0.1},
    )


def _fill(session_factory: sessionmaker[Session], n: int) -> None:
    with session_factory() as session, session.begin():
        for i in range(1, n + 1):
            _append(session, i)


def test_records_chain_up(session_factory: sessionmaker[Session]) -> None:
    _fill(session_factory, 3)
    with session_factory() as session:
        records = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
    assert [r.id for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert all(r.hash == audit.record_hash(r) for r in records)
    first = records[0]
    assert first.at.tzinfo is UTC
    assert abs(datetime.now(UTC) - first.at) < timedelta(minutes=1)
    assert first.before == {"name": "gd-r1", "capacity_kbps": 1, "tags": ["a", "b"]}
    assert first.after is not None and first.after["note"] == "韶关 ✓"


def test_an_intact_chain_verifies(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        empty = audit.verify(session)
    assert (empty.ok, empty.checked, empty.head_hash) == (True, 0, None)
    _fill(session_factory, 5)
    with session_factory() as session:
        result = audit.verify(session, batch=2)
        head = session.scalar(select(AuditRecord.hash).where(AuditRecord.id == 5))
    assert (result.ok, result.checked, result.first_broken_id) == (True, 5, None)
    assert result.head_hash == head
    assert str(result) == f"chain intact, 5 records (head {head})"


@pytest.mark.parametrize(
    ("tamper", "broken", "reason"),
    [
        (
            "UPDATE audit_records SET after = '{\"capacity_kbps\": 999}' WHERE id = 3",
            3,
            "its content does not match its hash: the record was edited",
        ),
        (
            "UPDATE audit_records SET actor = 'somebody.else' WHERE id = 2",
            2,
            "its content does not match its hash: the record was edited",
        ),
        ("DELETE FROM audit_records WHERE id = 3", 4, "record 3 is missing (deleted)"),
        ("DELETE FROM audit_records WHERE id IN (2, 3)", 4, "records 2 to 3 are missing"),
        ("DELETE FROM audit_records WHERE id = 1", 2, "record 1 is missing (deleted)"),
        (
            "UPDATE audit_records SET prev_hash = hash WHERE id = 4",
            4,
            "its prev_hash does not match the hash of record 3",
        ),
    ],
)
def test_tampering_is_found_and_named(
    session_factory: sessionmaker[Session], tamper: str, broken: int, reason: str
) -> None:
    _fill(session_factory, 5)
    with session_factory() as session, session.begin():
        session.execute(text(tamper))
    with session_factory() as session:
        result = audit.verify(session)
    assert result.ok is False
    assert result.first_broken_id == broken
    assert result.reason is not None and result.reason.startswith(reason)


def test_rehashing_an_edited_record_breaks_the_next_link(
    session_factory: sessionmaker[Session],
) -> None:
    _fill(session_factory, 4)
    with session_factory() as session, session.begin():
        rec = session.get(AuditRecord, 2)
        assert rec is not None
        rec.actor = "somebody.else"
        rec.hash = audit.record_hash(rec)  # a careful forger recomputes the hash
    with session_factory() as session:
        result = audit.verify(session)
    assert (result.ok, result.first_broken_id) == (False, 3)
    assert result.reason is not None and "prev_hash does not match the hash of record 2" in (
        result.reason
    )


def test_concurrent_writers_do_not_fork_the_chain(
    session_factory: sessionmaker[Session],
) -> None:
    writers, each = 4, 6
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            barrier.wait()
            for i in range(each):
                with session_factory() as session, session.begin():
                    # read something first, as the API does, then append
                    session.execute(select(AuditRecord.id).limit(1)).all()
                    _append(session, i, actor=f"writer{w}")
        except BaseException as err:  # collected and reported by the test thread
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_factory() as session:
        result = audit.verify(session)
        actors = session.scalars(select(AuditRecord.actor)).all()
    assert (result.ok, result.checked) == (True, writers * each)
    assert sorted(set(actors)) == [f"writer{w}" for w in range(writers)]


def test_a_rolled_back_append_leaves_no_trace(session_factory: sessionmaker[Session]) -> None:
    _fill(session_factory, 2)
    with session_factory() as session:
        _append(session, 3)
        session.rollback()
    _fill(session_factory, 1)
    with session_factory() as session:
        result = audit.verify(session)
    assert (result.ok, result.checked) == (True, 3)


def test_times_must_be_aware_and_values_json(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin(), pytest.raises(TypeError):
        audit.append(
            session,
            actor="x",
            action="x",
            target_type="x",
            target="x",
            before={"when": datetime.now(UTC)},
            after=None,
        )
    naive = datetime(2026, 1, 1)
    with session_factory() as session, pytest.raises(Exception, match="timezone-aware"):
        session.add(
            AuditRecord(
                id=1,
                at=naive,
                actor="x",
                action="x",
                target_type="x",
                target="x",
                prev_hash=GENESIS,
                hash=GENESIS,
            )
        )
        session.flush()


# ---- tiandi audit verify -----------------------------------------------------------------------


def _verify_cli(database_url: str) -> tuple[int, str]:
    from tiandi.cli import app

    env = {"TIANDI_DATABASE_URL": database_url, "TIANDI_ENVIRONMENT": "development"}
    result = CliRunner().invoke(app, ["audit", "verify"], env=env)
    return result.exit_code, result.output


def test_the_verify_command(database_url: str, session_factory: sessionmaker[Session]) -> None:
    assert _verify_cli(database_url) == (0, f"chain intact, 0 records (head {GENESIS})\n")
    _fill(session_factory, 4)
    code, out = _verify_cli(database_url)
    assert code == 0
    assert out.startswith("chain intact, 4 records (head ")
    with session_factory() as session, session.begin():
        session.execute(text("UPDATE audit_records SET target = 'gd-r9' WHERE id = 2"))
    code, out = _verify_cli(database_url)
    assert code == 1
    assert out.strip() == (
        "chain broken at record 2: its content does not match its hash: the record was edited"
    )


def test_the_verify_command_on_a_database_without_the_schema(tmp_path: object) -> None:
    code, out = _verify_cli(f"sqlite:///{tmp_path}/empty.db")
    assert code == 2
    assert "run `tiandi db upgrade`" in out
    assert "Traceback" not in out
