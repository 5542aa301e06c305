"""Device profiles as data: which SNMP objects to read from a device, and what they become.

A profile is one YAML file in ``monitors/profiles/`` (a new vendor is a new file). It says

- **which devices it is for** (``match``: device kind, vendor, platform, model — a glob; the
  most specific matching profile wins: the one naming the most of those four);
- **scalars**, read with GET (or folded into the first GETBULK as non-repeaters), each written to
  a ``measurement`` as a ``field``;
- **tables**, walked with GETBULK by column root; every row becomes one point of the table's
  ``measurement``, tagged with the columns that carry a ``tag`` (e.g. ``ifName`` → ``ifname``),
  and, with ``links_by``, with the ``link`` and ``role`` riding on the row's interface; with
  ``rows_from`` (a scalar counting the rows, as ifNumber counts ifTable's), a walk that has read
  that many rows ends without the extra request that would only show the table's end;
- each value's **type**: ``gauge`` (integer as read), ``scaled`` (float, value x ``factor``: dBx10
  → dB, TimeTicks → s, Mbit/s → bit/s), ``counter32`` / ``counter64`` (integer as read, plus an
  optional ``rate`` field per second x its ``factor`` — 8 for octets → bit/s — whose plausible
  maximum is another column's value: ``max_from``), ``enum`` (integer code; ``labels`` document
  it), ``label`` (string from ``labels``), ``truth`` (boolean: code in ``true_values``),
  ``string`` (UTF-8 text);
- ``fallback``: another object read instead on devices that do not have this one (ifHCInOctets
  → ifInOctets on 32-bit agents, ifName → ifDescr);
- ``extends``: a profile builds on another; scalars and tables are merged by name (a table's
  columns too), the child's version winning.

Everything is checked when the profiles load (:func:`load_profiles`), and every problem is
reported at once with its file, its path in the file and the reason — a profile that cannot be
polled right never reaches the poller. The measurements and fields the shipped profiles write
are documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from inventory.enums import DeviceKind
from inventory.errors import Problem, TiandiError
from monitors.snmp.base import Oid

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

PROFILE_DIR: Final = Path(__file__).with_name("profiles")
RESERVED_TAGS: Final = frozenset({"device", "site", "province", "kind", "link", "role"})
_IDENT = r"^[a-z][a-z0-9_]{0,62}$"


class ProfileInvalid(TiandiError):
    """Profiles that cannot be used; every problem is listed with its file and path."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the SNMP device profiles; fix them (see "
            f"monitors/profiles.py for the format):\n{lines}"
        )


def parse_oid(value: Any) -> Oid:
    """``"1.3.6.1.2.1.1.3.0"`` (a leading dot is allowed) → ``(1, 3, 6, 1, 2, 1, 1, 3, 0)``."""
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        parts = tuple(value)
    elif isinstance(value, str):
        text = value.strip().removeprefix(".")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", text):
            raise ValueError(
                f"{value!r} is not a numeric OID like 1.3.6.1.2.1.1.3.0 (names need MIB lookups, "
                "which the poller never does)"
            )
        parts = tuple(int(p) for p in text.split("."))
    else:
        raise ValueError(f"an OID is dotted text like 1.3.6.1.2.1.1.3.0, got {value!r}")
    if len(parts) < 2 or parts[0] > 2 or (parts[1] >= 40 and parts[0] < 2):
        raise ValueError(f"{value!r} is not a valid OID (first arcs 0-2, second below 40)")
    if any(p >= 2**32 for p in parts):
        raise ValueError(f"{value!r} has a sub-identifier above 2^32 - 1")
    return parts


OidField = Annotated[tuple[int, ...], BeforeValidator(parse_oid)]
Ident = Annotated[str, Field(pattern=_IDENT)]


class ValueType(enum.StrEnum):
    GAUGE = "gauge"
    SCALED = "scaled"
    COUNTER32 = "counter32"
    COUNTER64 = "counter64"
    ENUM = "enum"
    LABEL = "label"
    TRUTH = "truth"
    STRING = "string"


COUNTER_TYPES: Final = frozenset({ValueType.COUNTER32, ValueType.COUNTER64})
NUMERIC_TYPES: Final = frozenset({ValueType.GAUGE, ValueType.SCALED, *COUNTER_TYPES})
# What each type writes (InfluxDB keeps a field's type for ever: checked across all profiles).
OUTPUT_TYPES: Final[dict[ValueType, str]] = {
    ValueType.GAUGE: "integer",
    ValueType.SCALED: "float",
    ValueType.COUNTER32: "integer",
    ValueType.COUNTER64: "integer",
    ValueType.ENUM: "integer",
    ValueType.LABEL: "string",
    ValueType.TRUTH: "boolean",
    ValueType.STRING: "string",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class RateSpec(_Strict):
    """A counter's rate: per second x ``factor``, dropped above ``max_from`` x 1.5."""

    field: Ident
    factor: float = Field(default=1.0, gt=0)
    max_from: str | None = Field(
        default=None, description="a column of the same table holding the plausible maximum"
    )


class FallbackSpec(_Strict):
    """Read this object instead on a device that does not have the primary one."""

    name: str = Field(min_length=1, max_length=64)
    oid: OidField
    type: ValueType
    factor: float | None = Field(default=None, description="scaled: value x factor")


class ValueSpec(_Strict):
    name: str = Field(min_length=1, max_length=64, description="the MIB object's name")
    oid: OidField
    type: ValueType
    field: Ident | None = Field(default=None, description="None: read but not written")
    factor: float | None = Field(default=None, description="scaled: value x factor")
    labels: dict[int, str] | None = None
    true_values: tuple[int, ...] | None = None
    rate: RateSpec | None = None
    fallback: FallbackSpec | None = None


class ScalarSpec(ValueSpec):
    measurement: Ident
    role: Literal["uptime"] | None = Field(
        default=None, description="uptime: sysUpTime, used to detect restarts"
    )


class ColumnSpec(ValueSpec):
    tag: Ident | None = Field(default=None, description="the value (as text) becomes this tag")


class TableSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    measurement: Ident | None = Field(default=None, description="required (or inherited)")
    columns: list[ColumnSpec] = Field(min_length=1)
    links_by: Ident | None = Field(
        default=None,
        description="match this tag against the device's links' interfaces: adds link, role",
    )
    max_rows: int = Field(default=2_000, ge=1, le=100_000)
    rows_from: str | None = Field(
        default=None,
        description="a scalar that counts the rows (ifNumber): a walk that has read that many "
        "rows, as many as the last full walk found, ends without reading past the table",
    )


class MatchSpec(_Strict):
    kind: DeviceKind | None = None
    vendor: str | None = None
    platform: str | None = None
    model: str | None = Field(default=None, description="a glob, e.g. ISR43*")

    @property
    def specificity(self) -> int:
        return sum(v is not None for v in (self.kind, self.vendor, self.platform, self.model))

    def matches(self, kind: DeviceKind, vendor: str, platform: str, model: str | None) -> bool:
        if self.kind is not None and self.kind is not kind:
            return False
        if self.vendor is not None and self.vendor.lower() != vendor.lower():
            return False
        if self.platform is not None and self.platform.lower() != platform.lower():
            return False
        return self.model is None or (
            model is not None and fnmatch.fnmatchcase(model.lower(), self.model.lower())
        )


class ProfileDoc(_Strict):
    """One YAML file."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    description: str = ""
    extends: str | None = None
    match: MatchSpec | None = Field(
        default=None, description="None: an abstract base, only used through extends"
    )
    scalars: list[ScalarSpec] = Field(default_factory=list)
    tables: list[TableSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """A profile with its ``extends`` chain resolved: what the poller uses."""

    name: str
    source: str  # the file it came from
    match: MatchSpec | None
    scalars: tuple[ScalarSpec, ...]
    tables: tuple[TableSpec, ...]
    lineage: tuple[str, ...] = ()  # itself, then what it extends, up to the root

    @property
    def uptime(self) -> ScalarSpec | None:
        return next((s for s in self.scalars if s.role == "uptime"), None)

    def oids(self) -> list[tuple[str, Oid]]:
        """Every object it may read — primaries and fallbacks — as (name, OID)."""
        out: list[tuple[str, Oid]] = []
        for spec in (*self.scalars, *(c for t in self.tables for c in t.columns)):
            out.append((spec.name, spec.oid))
            if spec.fallback is not None:
                out.append((spec.fallback.name, spec.fallback.oid))
        return out


@dataclass
class ProfileSet:
    """Every loaded profile; ``match`` picks the one for a device."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    _warned: set[tuple[str, ...]] = field(default_factory=set, repr=False)

    def __iter__(self) -> Any:
        return iter(self.profiles.values())

    def __len__(self) -> int:
        return len(self.profiles)

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    def match(
        self, kind: DeviceKind, vendor: str, platform: str, model: str | None = None
    ) -> Profile | None:
        """The most specific profile for the device, or None. Ties go to the first by name."""
        best: list[Profile] = []
        top = -1
        for profile in self.profiles.values():
            m = profile.match
            if m is None or not m.matches(kind, vendor, platform, model):
                continue
            if m.specificity > top:
                best, top = [profile], m.specificity
            elif m.specificity == top:
                best.append(profile)
        if not best:
            return None
        best.sort(key=lambda p: p.name)
        if len(best) > 1:
            key = tuple(p.name for p in best)
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "profiles %s match %s/%s/%s/%s equally well; using %s — make one more specific",
                    ", ".join(key),
                    kind,
                    vendor,
                    platform,
                    model,
                    best[0].name,
                )
        return best[0]


# ---- loading and checking ------------------------------------------------------------------


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _parse_file(path: Path, problems: list[Problem]) -> ProfileDoc | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        problems.append(Problem("(file)", f"cannot read: {err.strerror}", str(path)))
        return None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problems.append(Problem(where, f"not valid YAML: {err}", str(path)))
        return None
    if not isinstance(data, dict):
        problems.append(
            Problem("(top level)", "a profile is a mapping (name, match, ...)", str(path))
        )
        return None
    try:
        return ProfileDoc.model_validate(data)
    except ValidationError as err:
        for e in err.errors():
            problems.append(Problem(_loc(e["loc"]), e["msg"], str(path)))
        return None


def _check_value(
    spec: ValueSpec, path: str, file: str, problems: list[Problem], columns: set[str] | None
) -> None:
    def bad(where: str, reason: str) -> None:
        problems.append(Problem(f"{path}.{where}" if where else path, reason, file))

    t = spec.type
    if t is ValueType.SCALED and spec.factor is None:
        bad("factor", "a scaled value needs factor (e.g. 0.1 for tenths of a dB)")
    if t is not ValueType.SCALED and spec.factor is not None:
        bad("factor", f"factor is for scaled values, not {t}")
    if t is ValueType.LABEL and not spec.labels:
        bad("labels", "a label value needs labels (code: text)")
    if spec.labels and t not in (ValueType.ENUM, ValueType.LABEL):
        bad("labels", f"labels are for enum and label values, not {t}")
    if spec.true_values is not None and t is not ValueType.TRUTH:
        bad("true_values", f"true_values is for truth values, not {t}")
    if spec.rate is not None:
        if t not in COUNTER_TYPES:
            bad("rate", f"only counters have a rate, not {t}")
        if spec.rate.max_from is not None and (
            columns is None or spec.rate.max_from not in columns
        ):
            bad("rate.max_from", f"{spec.rate.max_from!r} is not a column of this table")
    if spec.fallback is not None:
        fb = spec.fallback.type
        compatible = fb is t or {fb, t} <= COUNTER_TYPES or {fb, t} <= {ValueType.STRING}
        if not compatible:
            bad("fallback.type", f"a {fb} fallback cannot stand in for a {t} value")
        if (fb is ValueType.SCALED) != (spec.fallback.factor is not None):
            bad("fallback.factor", "a scaled fallback needs its own factor; only scaled has one")


Origin = dict[int, tuple[str, str]]  # id(spec) -> (file, path in that file)


def _check_doc(doc: ProfileDoc, file: str, problems: list[Problem], origin: Origin) -> None:
    """What can be checked in one file alone (names are unique), and where each spec is."""
    names: set[str] = set()
    for i, s in enumerate(doc.scalars):
        origin[id(s)] = (file, f"scalars[{i}]")
        if s.name in names:
            problems.append(Problem(f"scalars[{i}].name", f"{s.name!r} appears twice", file))
        names.add(s.name)
    tables: set[str] = set()
    for ti, t in enumerate(doc.tables):
        origin[id(t)] = (file, f"tables[{ti}]")
        if t.name in tables:
            problems.append(Problem(f"tables[{ti}].name", f"table {t.name!r} appears twice", file))
        tables.add(t.name)
        columns: set[str] = set()
        for ci, c in enumerate(t.columns):
            origin[id(c)] = (file, f"tables[{ti}].columns[{ci}]")
            if c.name in columns:
                problems.append(
                    Problem(f"tables[{ti}].columns[{ci}].name", f"{c.name!r} appears twice", file)
                )
            columns.add(c.name)


def _check_profile(profile: Profile, problems: list[Problem], origin: Origin) -> None:
    """What needs the resolved profile; each problem is placed where its spec was written."""

    def at(spec: object, default: str) -> tuple[str, str]:
        return origin.get(id(spec), (profile.source, default))

    fields: dict[tuple[str, str], str] = {}

    def claim(measurement: str, name: str, file: str, where: str) -> None:
        key = (measurement, name)
        if key in fields and fields[key] != f"{file}: {where}":
            problems.append(
                Problem(
                    where, f"field {measurement}.{name} is already written by {fields[key]}", file
                )
            )
        else:
            fields[key] = f"{file}: {where}"

    uptimes = [s for s in profile.scalars if s.role == "uptime"]
    if len(uptimes) > 1:
        file, path = at(uptimes[-1], "scalars")
        problems.append(Problem(f"{path}.role", "only one scalar may have role: uptime", file))
    for s in profile.scalars:
        file, path = at(s, f"scalars[{s.name}]")
        _check_value(s, path, file, problems, None)
        if s.rate is not None and s.rate.max_from is not None:
            problems.append(Problem(f"{path}.rate.max_from", "scalars have no columns", file))
        if s.field is not None:
            claim(s.measurement, s.field, file, path)
        if s.rate is not None:
            claim(s.measurement, s.rate.field, file, f"{path}.rate")
        counted = any(t.rows_from == s.name for t in profile.tables)
        if s.field is None and s.rate is None and s.role is None and not counted:
            problems.append(
                Problem(
                    f"{path}.field",
                    "a scalar must be written (field) or used (role, a table's rows_from)",
                    file,
                )
            )
        if s.role == "uptime" and s.type not in (ValueType.SCALED, ValueType.GAUGE):
            problems.append(
                Problem(f"{path}.type", "the uptime scalar is TimeTicks: gauge or scaled", file)
            )
    for t in profile.tables:
        tfile, tpath = at(t, f"tables[{t.name}]")
        if t.measurement is None:
            problems.append(Problem(f"{tpath}.measurement", "a table needs a measurement", tfile))
            continue
        names = [c.name for c in t.columns]
        tags = {c.tag for c in t.columns if c.tag}
        roots = [c.oid for c in t.columns]
        for c in t.columns:
            file, path = at(c, f"{tpath}.columns[{c.name}]")
            if roots.count(c.oid) > 1:
                problems.append(Problem(f"{path}.oid", "two columns walk the same OID", file))
            _check_value(c, path, file, problems, set(names))
            if c.tag in RESERVED_TAGS:
                problems.append(
                    Problem(f"{path}.tag", f"{c.tag!r} is set by the poller, not by a column", file)
                )
            if c.tag and c.type not in (ValueType.STRING, ValueType.GAUGE, ValueType.LABEL):
                problems.append(
                    Problem(
                        f"{path}.tag",
                        f"a tag comes from a string, gauge or label, not {c.type}",
                        file,
                    )
                )
            if c.field is not None:
                claim(t.measurement, c.field, file, path)
            if c.rate is not None:
                claim(t.measurement, c.rate.field, file, f"{path}.rate")
                if c.rate.max_from is not None:
                    other = next((x for x in t.columns if x.name == c.rate.max_from), None)
                    if other is not None and other.type not in NUMERIC_TYPES:
                        problems.append(
                            Problem(f"{path}.rate.max_from", f"{other.name} is not numeric", file)
                        )
            if c.field is None and c.rate is None and c.tag is None:
                referenced = any(
                    x.rate is not None and x.rate.max_from == c.name for x in t.columns
                )
                if not referenced:
                    problems.append(
                        Problem(
                            f"{path}.field",
                            "a column must be written (field), tagged (tag) or used (max_from)",
                            file,
                        )
                    )
        if t.rows_from is not None:
            counter = next((x for x in profile.scalars if x.name == t.rows_from), None)
            if counter is None:
                problems.append(
                    Problem(f"{tpath}.rows_from", f"no scalar named {t.rows_from!r}", tfile)
                )
            elif counter.type is not ValueType.GAUGE:
                problems.append(
                    Problem(f"{tpath}.rows_from", f"{counter.name} must be a gauge", tfile)
                )
        if t.links_by is not None and t.links_by not in tags:
            problems.append(
                Problem(f"{tpath}.links_by", f"no column has tag {t.links_by!r}", tfile)
            )


def _merge_by_name(base: Sequence[Any], override: Sequence[Any]) -> list[Any]:
    out = {item.name: item for item in base}
    for item in override:
        out[item.name] = item
    return list(out.values())


def _merge_tables(
    base: Sequence[TableSpec], override: Sequence[TableSpec], origin: Origin
) -> list[TableSpec]:
    out = {t.name: t for t in base}
    for t in override:
        parent = out.get(t.name)
        if parent is None:
            out[t.name] = t
        else:
            # What the child sets wins; the rest (measurement, links_by ...) is inherited.
            update = {k: getattr(t, k) for k in t.model_fields_set if k not in ("name", "columns")}
            update["columns"] = _merge_by_name(parent.columns, t.columns)
            out[t.name] = merged = parent.model_copy(update=update)
            if id(t) in origin:
                origin[id(merged)] = origin[id(t)]
    return list(out.values())


def _resolve(
    docs: Mapping[str, tuple[ProfileDoc, str]], problems: list[Problem], origin: Origin
) -> dict[str, Profile]:
    resolved: dict[str, Profile] = {}

    def build(name: str, chain: tuple[str, ...]) -> Profile | None:
        if name in resolved:
            return resolved[name]
        doc, file = docs[name]
        parent: Profile | None = None
        if doc.extends is not None:
            if doc.extends in chain or doc.extends == name:
                problems.append(
                    Problem(
                        "extends",
                        f"circular extends: {' -> '.join((*chain, name, doc.extends))}",
                        file,
                    )
                )
                return None
            if doc.extends not in docs:
                known = ", ".join(sorted(docs)) or "none"
                problems.append(
                    Problem("extends", f"no profile named {doc.extends!r} (known: {known})", file)
                )
                return None
            parent = build(doc.extends, (*chain, name))
            if parent is None:
                return None
        scalars = _merge_by_name(parent.scalars if parent else (), doc.scalars)
        tables = _merge_tables(parent.tables if parent else (), doc.tables, origin)
        profile = Profile(
            name=name,
            source=file,
            match=doc.match,
            scalars=tuple(scalars),
            tables=tuple(tables),
            lineage=(name, *(parent.lineage if parent else ())),
        )
        resolved[name] = profile
        return profile

    for name in docs:
        build(name, ())
    return resolved


def _check_set(profiles: Mapping[str, Profile], problems: list[Problem]) -> None:
    """Rules across profiles: one type per field, no two identical match blocks."""
    types: dict[tuple[str, str], tuple[str, str]] = {}
    for p in profiles.values():
        for m, f, t in _outputs(p):
            seen = types.setdefault((m, f), (t, p.name))
            if seen[0] != t:
                problems.append(
                    Problem(
                        "fields",
                        f"{m}.{f} is {t} here but {seen[0]} in profile {seen[1]!r}; InfluxDB keeps "
                        "one type per field for ever — rename one",
                        p.source,
                    )
                )
    matches: dict[MatchSpec, str] = {}
    for p in profiles.values():
        if p.match is None:
            continue
        key = p.match.model_copy(
            update={
                "vendor": p.match.vendor.lower() if p.match.vendor else None,
                "platform": p.match.platform.lower() if p.match.platform else None,
                "model": p.match.model.lower() if p.match.model else None,
            }
        )
        if key in matches:
            problems.append(
                Problem(
                    "match", f"the same match as profile {matches[key]!r}; merge them", p.source
                )
            )
        else:
            matches[key] = p.name


def _outputs(profile: Profile) -> Iterable[tuple[str, str, str]]:
    for s in profile.scalars:
        if s.field is not None:
            yield s.measurement, s.field, OUTPUT_TYPES[s.type]
        if s.rate is not None:
            yield s.measurement, s.rate.field, "float"
    for t in profile.tables:
        if t.measurement is None:
            continue
        for c in t.columns:
            if c.field is not None:
                yield t.measurement, c.field, OUTPUT_TYPES[c.type]
            if c.rate is not None:
                yield t.measurement, c.rate.field, "float"


def load_profiles(directory: Path | None = None, files: Iterable[Path] | None = None) -> ProfileSet:
    """Load and check every ``*.yaml`` of ``directory`` (default: the shipped profiles).

    Raises ``ProfileInvalid`` listing every problem (file, path, reason).
    """
    paths = (
        sorted(files) if files is not None else sorted((directory or PROFILE_DIR).glob("*.yaml"))
    )
    problems: list[Problem] = []
    docs: dict[str, tuple[ProfileDoc, str]] = {}
    origin: Origin = {}
    for path in paths:
        doc = _parse_file(path, problems)
        if doc is None:
            continue
        if doc.name in docs:
            problems.append(
                Problem(
                    "name",
                    f"profile {doc.name!r} is also defined in {docs[doc.name][1]}",
                    str(path),
                )
            )
            continue
        docs[doc.name] = (doc, str(path))
        _check_doc(doc, str(path), problems, origin)
    resolved = _resolve(docs, problems, origin)
    for profile in resolved.values():
        _check_profile(profile, problems, origin)
    _check_set(resolved, problems)
    if problems:
        # A parent's problem shows once, not once per profile that extends it.
        raise ProfileInvalid(list(dict.fromkeys(problems)))
    if not resolved:
        log.warning(
            "no SNMP device profiles in %s: nothing will be polled", directory or PROFILE_DIR
        )
    return ProfileSet(dict(sorted(resolved.items())))
