"""The audit trail: an append-only, hash-chained record of every change and control action.

Each record stores who did what, when, to which target, the target before and after, and the
SHA-256 of the record before it; its own hash covers all of that. Editing a record, or deleting
one from the middle of the chain, therefore breaks the chain at a place :func:`verify` names.

Out of scope: deleting the newest records (the tail) leaves a shorter chain that is still intact;
only a copy of the head hash kept somewhere else (``VerifyResult.head_hash``) can reveal that.

Appends are serialized so two writers never fork the chain: :func:`lock_chain` takes a
transaction-scoped lock (PostgreSQL advisory lock; SQLite's single write lock) before the last
hash is read, and record ids are the chain positions 1, 2, 3... assigned under that lock.
Callers that check something before writing (the inventory API) take the same lock first, so
their check and their write see the same data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String, TypeDecorator, false, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from inventory.errors import TiandiError
from inventory.model import Base

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""

# Key of the PostgreSQL advisory lock that serializes appends ("tiandiau" as a 64-bit integer).
_PG_LOCK_KEY = int.from_bytes(b"tiandiau", "big") & 0x7FFF_FFFF_FFFF_FFFF


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone: store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AuditRecord(Base):
    __tablename__ = "audit_records"

    # The position in the chain, assigned under the chain lock: 1, 2, 3... without gaps.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(160), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255))
    before: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"AuditRecord(id={self.id}, actor={self.actor!r}, action={self.action!r})"


class AuditError(TiandiError):
    """The audit trail cannot be written on this database."""


def _canonical_json(value: Any) -> Any:
    """The value as JSON would store it (tuples become lists...), or TypeError if it is not JSON."""
    return json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False))


def record_hash(rec: AuditRecord) -> str:
    """SHA-256 over a canonical JSON of every field but ``hash`` itself."""
    body = {
        "id": rec.id,
        "at": rec.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": rec.actor,
        "action": rec.action,
        "target_type": rec.target_type,
        "target": rec.target,
        "before": rec.before,
        "after": rec.after,
        "prev_hash": rec.prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_chain(session: Session) -> None:
    """Hold the chain's write lock until the caller's transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
    elif dialect == "sqlite":
        # pysqlite begins a transaction at the first write statement only; a write that matches
        # no row still takes the database's write lock, before anything is read.
        session.execute(
            update(AuditRecord)
            .where(false())
            .values(hash=AuditRecord.hash)
            .execution_options(synchronize_session=False)
        )
    else:
        raise AuditError(f"the audit trail supports SQLite and PostgreSQL, not {dialect}")


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one record in the caller's transaction (flushed, not committed).

    ``before``/``after`` must be JSON-serializable and must never hold a secret value: pass
    references and public fields only.
    """
    lock_chain(session)
    last = session.execute(
        select(AuditRecord.id, AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1)
    ).first()
    rec = AuditRecord(
        id=last.id + 1 if last else 1,
        at=(at or datetime.now(UTC)).astimezone(UTC),
        actor=actor,
        action=action,
        target_type=target_type,
        target=target,
        before=_canonical_json(dict(before)) if before is not None else None,
        after=_canonical_json(dict(after)) if after is not None else None,
        prev_hash=last.hash if last else GENESIS,
    )
    rec.hash = record_hash(rec)
    session.add(rec)
    session.flush()
    log.debug("audit #%d %s %s %s:%s", rec.id, actor, action, target_type, target)
    return rec


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None
    head_hash: str | None = None
    """Hash of the newest record that verified; keep a copy elsewhere to detect a deleted tail."""

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact, {self.checked} records (head {self.head_hash or GENESIS})"
        return f"chain broken at record {self.first_broken_id}: {self.reason}"


def verify(session: Session, *, batch: int = 1000) -> VerifyResult:
    """Walk the chain from the first record; stop at the first record that does not verify."""
    prev_id, prev_hash, checked = 0, GENESIS, 0
    rows = session.scalars(
        select(AuditRecord).order_by(AuditRecord.id).execution_options(yield_per=batch)
    )
    for rec in rows:
        reason = None
        if rec.id != prev_id + 1:
            missing = (
                f"record {prev_id + 1} is"
                if rec.id == prev_id + 2
                else f"records {prev_id + 1} to {rec.id - 1} are"
            )
            reason = f"{missing} missing (deleted)"
        elif rec.prev_hash != prev_hash:
            reason = (
                f"its prev_hash does not match the hash of record {prev_id}: a record before it "
                "was altered or removed"
            )
        elif record_hash(rec) != rec.hash:
            reason = "its content does not match its hash: the record was edited"
        if reason is not None:
            rows.close()
            return VerifyResult(False, checked, rec.id, reason, prev_hash if checked else None)
        prev_id, prev_hash = rec.id, rec.hash
        checked += 1
    return VerifyResult(True, checked, head_hash=prev_hash if checked else None)
