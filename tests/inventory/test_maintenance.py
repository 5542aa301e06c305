"""Maintenance windows: validated, stored with their offsets, and round-tripped exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from inventory.store import apply_document, load_document
from inventory.validation import validate_or_raise, validate_raw
from inventory.yamlio import dump_document
from tests.harness.samples import site, small_inventory

WINDOW = {
    "start": "2026-12-01T01:00:00+08:00",
    "end": "2026-12-01T05:00:00+08:00",
    "reason": "carrier fibre work",
}


def test_windows_round_trip_with_their_offset_and_update_in_place(
    session_factory: sessionmaker[Session],
) -> None:
    raw = small_inventory()
    site(raw, "guangdong")["maintenance"] = [WINDOW]
    doc = validate_or_raise(raw)
    with session_factory() as session, session.begin():
        summary = apply_document(session, doc)
    assert summary.created["sites"] == len(doc.sites)
    with session_factory() as session:
        loaded = load_document(session)
    assert dump_document(loaded) == dump_document(doc)
    assert "2026-12-01T01:00:00+08:00" in dump_document(loaded)
    window = next(s for s in loaded.sites if s.name == "guangdong").maintenance[0]
    assert window.covers(datetime(2026, 11, 30, 18, 0, tzinfo=UTC))  # 02:00 in Beijing
    assert not window.covers(datetime(2026, 11, 30, 21, 0, tzinfo=UTC))

    site(raw, "guangdong")["maintenance"] = []
    with session_factory() as session, session.begin():
        summary = apply_document(session, validate_or_raise(raw))
    assert summary.updated == {"sites": 1}
    with session_factory() as session:
        assert (
            next(s for s in load_document(session).sites if s.name == "guangdong").maintenance == []
        )


def test_bad_windows_are_reported_with_their_path() -> None:
    raw = small_inventory()
    site(raw, "guangdong")["maintenance"] = [
        {"start": "2026-12-01T05:00:00+08:00", "end": "2026-12-01T01:00:00+08:00"},
        {"start": "2026-12-01T01:00:00", "end": "2026-12-01T02:00:00+08:00"},
    ]
    doc, problems = validate_raw(raw)
    assert doc is None
    paths = sorted(p.path for p in problems)
    index = raw["sites"].index(site(raw, "guangdong"))
    assert paths == [
        f"sites[{index}].maintenance[0]",
        f"sites[{index}].maintenance[1].start",
    ]
    reasons = " ".join(p.reason for p in problems)
    assert "end after it starts" in reasons
    assert "timezone" in reasons
