"""Scripted faults: a YAML timeline of fault requests, run relative to a start time.

```yaml
- at: 10s
  fault: cut_link
  link: gd-shaoguan-qujiang-primary
- at: 40s
  fault: restore_link
  link: gd-shaoguan-qujiang-primary
- at: 1m
  fault: rain_fade
  province: guangdong
  depth_db: 8
  duration: 5m
- at: 90s
  fault: flap
  link: sc-chengdu-jinjiang-backup
  down: 5s
  up: 20s
  duration: 3m
```

``at`` is a duration from the start (``10``, ``"10s"``, ``"2m"``, ``"1h30m"``); ``fault`` is a kind
of ``lab.faults.ALL_KINDS``; the other keys are that kind's parameters (``lab.faults``). The whole
file is checked before anything runs, and every problem is reported with its entry index
(``timeline[3].link: ...``). A request that fails when its time comes (say the device was
removed) is logged and the timeline goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inventory.errors import TiandiError
from lab.faults import ALL_KINDS, FaultBook, FaultError, parse_duration, parse_params

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class TimelineInvalid(TiandiError):
    """A timeline has problems; all are listed, each with its entry index."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {where}{p}" for p in self.problems)
        super().__init__(f"timeline has {len(self.problems)} problem(s), nothing ran:\n{lines}")


@dataclass(frozen=True)
class TimelineEntry:
    index: int  # position in the file, for messages
    at: float  # seconds after the start
    kind: str
    params: dict[str, Any]

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"timeline[{self.index}] at {self.at:g} s: {self.kind} {args}".rstrip()


def parse_timeline(data: Any, book: FaultBook | None = None) -> list[TimelineEntry]:
    """Check a loaded timeline (a list of mappings); with ``book``, also that targets exist."""
    if isinstance(data, dict) and set(data) == {"timeline"}:
        data = data["timeline"]
    if not isinstance(data, list):
        raise TimelineInvalid(
            [
                f"a timeline is a list of entries (- at: 10s / fault: cut_link ...), "
                f"got {type(data).__name__}"
            ]
        )
    problems: list[str] = []
    entries: list[TimelineEntry] = []
    for i, raw in enumerate(data):
        where = f"timeline[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: an entry is a mapping with at: and fault:")
            continue
        item = dict(raw)
        at_raw = item.pop("at", None)
        kind = item.pop("fault", None)
        ok = True
        at = 0.0
        if at_raw is None:
            problems.append(f"{where}.at: missing (when to act, e.g. at: 10s)")
            ok = False
        else:
            try:
                at = parse_duration(at_raw)
            except ValueError as err:
                problems.append(f"{where}.at: {err}")
                ok = False
        if not isinstance(kind, str) or kind not in ALL_KINDS:
            problems.append(
                f"{where}.fault: {kind!r} is not a fault kind; known: {', '.join(ALL_KINDS)}"
            )
            continue
        try:
            params = parse_params(kind, item)
            if book is not None:
                book.check_targets(params)
        except FaultError as err:
            problems.append(f"{where}: {err}")
            continue
        if ok:
            entries.append(TimelineEntry(i, at, kind, params.model_dump(exclude_none=True)))
    if problems:
        raise TimelineInvalid(problems)
    return sorted(entries, key=lambda e: (e.at, e.index))


def parse_timeline_text(text: str, book: FaultBook | None = None) -> list[TimelineEntry]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise TimelineInvalid([f"not valid YAML: {err}"]) from err
    return parse_timeline(data, book)


def load_timeline(path: str | Path, book: FaultBook | None = None) -> list[TimelineEntry]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise TimelineInvalid([f"cannot read: {err.strerror}"], str(p)) from err
    try:
        return parse_timeline_text(text, book)
    except TimelineInvalid as err:
        raise TimelineInvalid(err.problems, str(p)) from err


async def run_timeline(
    entries: Sequence[TimelineEntry],
    book: FaultBook,
    start: float | None = None,
    on_change: Callable[[], None] | None = None,
) -> list[str]:
    """Apply each entry when ``start + at`` comes (on the book's clock); returns what happened."""
    begin = book.net.now() if start is None else start
    done: list[str] = []
    for entry in entries:
        delay = begin + entry.at - book.net.now()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            outcome = book.apply(entry.kind, entry.params)
        except FaultError as err:
            log.warning("%s failed: %s", entry.describe(), err)
            done.append(f"{entry.describe()}: failed: {err}")
            continue
        done.append(f"{entry.describe()}: {outcome.description}")
        log.info("%s: %s", entry.describe(), outcome.description)
        if on_change is not None:
            on_change()
    return done
