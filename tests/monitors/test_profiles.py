"""Device profiles: the shipped ones load, match the lab's devices, name only OIDs the lab serves
and fields ``docs/metrics.md`` documents; broken profiles are refused with every problem named."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from inventory.enums import DeviceKind
from inventory.generator import generate
from lab.snmp.views import VIEWS
from monitors.profiles import (
    OUTPUT_TYPES,
    PROFILE_DIR,
    ProfileInvalid,
    ProfileSet,
    ValueType,
    load_profiles,
    parse_oid,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


@pytest.fixture(scope="module")
def shipped() -> ProfileSet:
    return load_profiles()


def test_every_shipped_profile_loads(shipped: ProfileSet) -> None:
    names = {p.name for p in shipped}
    assert {
        "generic_snmp",
        "generic_router",
        "cisco_ios",
        "satellite_modem",
        "comtech_cdm",
        "idirect_remote",
        "idirect_hub",
        "cisco_codec",
        "mcu_cli",
    } <= names
    assert len(list(PROFILE_DIR.glob("*.yaml"))) == len(shipped)
    cisco = shipped.get("cisco_ios")
    assert cisco is not None and cisco.lineage == ("cisco_ios", "generic_router", "generic_snmp")
    assert cisco.uptime is not None and cisco.uptime.oid == (1, 3, 6, 1, 2, 1, 1, 3, 0)


def test_every_generated_device_gets_its_vendors_profile(shipped: ProfileSet) -> None:
    doc = generate(provinces=3, counties=30, seed=3)
    expected = {
        "cisco_ios": "cisco_ios",
        "comtech_cdm": "comtech_cdm",
        "idirect_remote": "idirect_remote",
        "idirect_hub": "idirect_hub",
        "cisco_codec": "cisco_codec",
        "mcu_cli": "mcu_cli",
    }
    seen = set()
    for site in doc.sites:
        for d in site.devices:
            profile = shipped.match(d.kind, d.vendor, d.platform, d.model)
            assert profile is not None, d
            assert profile.name == expected[d.platform], (d.name, profile.name)
            seen.add(profile.name)
    assert seen == set(expected.values())


def test_every_oid_a_profile_names_is_served_by_the_lab_for_that_kind(shipped: ProfileSet) -> None:
    """Scalars are instances (x.0) of a lab scalar object; table columns are lab columns."""
    for profile in shipped:
        if profile.match is None:
            continue
        kinds = [profile.match.kind] if profile.match.kind else list(DeviceKind)
        for kind in kinds:
            keys = set(VIEWS[kind].keys)
            for s in profile.scalars:
                for name, oid in [(s.name, s.oid)] + (
                    [(s.fallback.name, s.fallback.oid)] if s.fallback else []
                ):
                    assert oid[-1] == 0 and oid[:-1] in keys, (profile.name, kind, name)
            for t in profile.tables:
                for c in t.columns:
                    for name, oid in [(c.name, c.oid)] + (
                        [(c.fallback.name, c.fallback.oid)] if c.fallback else []
                    ):
                        assert oid in keys, (profile.name, kind, t.name, name)


def test_docs_describe_every_measurement_and_field(shipped: ProfileSet) -> None:
    """docs/metrics.md is the one place for the schema: it must list what the profiles write."""
    text = DOCS.read_text(encoding="utf-8")
    documented: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^### `([a-z_]+)`", line)
        if heading:
            current = heading.group(1)
            documented[current] = set()
            continue
        row = re.match(r"^\| `([a-z_0-9]+)`\s*\|", line)
        if row and current is not None:
            documented[current].add(row.group(1))
    for profile in shipped:
        for s in profile.scalars:
            for f in (s.field, s.rate.field if s.rate else None):
                if f is not None:
                    assert f in documented.get(s.measurement, set()), (
                        profile.name,
                        s.measurement,
                        f,
                    )
        for t in profile.tables:
            assert t.measurement is not None
            for c in t.columns:
                for f in (c.field, c.rate.field if c.rate else None):
                    if f is not None:
                        assert f in documented.get(t.measurement, set()), (t.measurement, f)
    # Written by the engine itself, not by a profile.
    assert {"reachable", "response_ms", "uptime_s"} <= documented["device"]


# ---- matching --------------------------------------------------------------------------------


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
name: base
match: {}
scalars:
  - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3.0, type: scaled, factor: 0.01,
     measurement: device, field: uptime_s, role: uptime}
"""


def test_the_most_specific_profile_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, "base", BASE)
    _write(tmp_path, "router", "name: router\nextends: base\nmatch: {kind: router}\n")
    _write(
        tmp_path,
        "cisco",
        "name: cisco\nextends: router\nmatch: {kind: router, vendor: Cisco, platform: cisco_ios}\n",
    )
    _write(
        tmp_path,
        "isr43",
        "name: isr43\nextends: cisco\n"
        "match: {kind: router, vendor: cisco, platform: cisco_ios, model: 'ISR43*'}\n",
    )
    _write(
        tmp_path, "huawei", "name: huawei\nextends: router\nmatch: {kind: router, vendor: huawei}\n"
    )
    _write(
        tmp_path, "vrp", "name: vrp\nextends: router\nmatch: {kind: router, platform: huawei_vrp}\n"
    )
    ps = load_profiles(tmp_path)

    def pick(vendor: str, platform: str, model: str | None = None) -> str | None:
        p = ps.match(DeviceKind.ROUTER, vendor, platform, model)
        return p.name if p else None

    assert pick("CISCO", "Cisco_IOS", "ISR4331") == "isr43"
    assert pick("cisco", "cisco_ios", "ASR1001-X") == "cisco"
    assert pick("cisco", "cisco_ios", None) == "cisco"
    assert pick("juniper", "junos") == "router"
    mcu = ps.match(DeviceKind.MCU, "x", "y")
    assert mcu is not None and mcu.name == "base"
    with caplog.at_level(logging.WARNING, logger="monitors.profiles"):
        assert pick("huawei", "huawei_vrp") == "huawei"  # a tie: first by name, said once
        assert pick("huawei", "huawei_vrp") == "huawei"
    ties = [r for r in caplog.records if "equally well" in r.getMessage()]
    assert len(ties) == 1 and "huawei, vrp" in ties[0].getMessage()


def test_extends_merges_scalars_tables_and_columns_by_name(tmp_path: Path) -> None:
    _write(tmp_path, "base", BASE)
    _write(
        tmp_path,
        "parent",
        """
name: parent
extends: base
match: {kind: router}
scalars:
  - {name: ifNumber, oid: 1.3.6.1.2.1.2.1.0, type: gauge, measurement: device}
tables:
  - name: interfaces
    measurement: interface
    rows_from: ifNumber
    links_by: ifname
    columns:
      - {name: ifName, oid: 1.3.6.1.2.1.31.1.1.1.1, type: string, tag: ifname}
      - {name: ifOperStatus, oid: 1.3.6.1.2.1.2.2.1.8, type: enum, field: oper_status}
""",
    )
    _write(
        tmp_path,
        "child",
        """
name: child
extends: parent
match: {kind: router, vendor: acme}
scalars:
  - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3.0, type: gauge, measurement: device,
     field: uptime_ticks, role: uptime}
tables:
  - name: interfaces
    columns:
      - {name: ifOperStatus, oid: 1.3.6.1.2.1.2.2.1.8, type: label, field: oper_state,
         labels: {1: up, 2: down}}
      - {name: ifInErrors, oid: 1.3.6.1.2.1.2.2.1.14, type: counter32, field: in_errors}
""",
    )
    child = load_profiles(tmp_path).get("child")
    assert child is not None
    assert [s.name for s in child.scalars] == ["sysUpTime", "ifNumber"]
    assert child.scalars[0].field == "uptime_ticks"
    (table,) = child.tables
    assert (table.measurement, table.links_by, table.rows_from) == (
        "interface",
        "ifname",
        "ifNumber",
    )
    assert [c.name for c in table.columns] == ["ifName", "ifOperStatus", "ifInErrors"]
    assert table.columns[1].type is ValueType.LABEL


# ---- refusing broken profiles -------------------------------------------------------------------


def test_every_problem_is_reported_with_file_path_and_reason(tmp_path: Path) -> None:
    _write(tmp_path, "base", BASE)
    bad = _write(
        tmp_path,
        "bad",
        """
name: bad
extends: base
match: {kind: router}
scalars:
  - {name: a, oid: sysUpTime.0, type: gauge, measurement: device, field: a}
  - {name: b, oid: 1.3.6.1.2.1.1.7.0, type: scaled, measurement: device, field: b}
  - {name: c, oid: 1.3.6.1.2.1.1.4.0, type: gauge, measurement: device, field: uptime_s}
  - {name: d, oid: 1.3.6.1.2.1.1.6.0, type: colour, measurement: device, field: d}
tables:
  - name: t
    measurement: interface
    rows_from: nothing
    links_by: ifname
    columns:
      - {name: x, oid: 1.3.6.1.2.1.2.2.1.10, type: gauge, field: x,
         rate: {field: x_bps, max_from: speed}}
      - {name: y, oid: 1.3.6.1.2.1.2.2.1.2, type: string, tag: device}
      - {name: z, oid: 1.3.6.1.2.1.2.2.1.3, type: label, field: z}
""",
    )
    with pytest.raises(ProfileInvalid) as info:
        load_profiles(tmp_path)
    problems = {(p.path, p.file) for p in info.value.problems}
    assert ("scalars[0].oid", str(bad)) in problems  # a name, not a numeric OID
    assert ("scalars[3].type", str(bad)) in problems  # pydantic errors come all at once
    text = str(info.value)
    assert "bad.yaml" in text and "numeric OID" in text

    # Fix the syntax errors: now the semantic problems show, all of them.
    bad.write_text(
        bad.read_text()
        .replace("sysUpTime.0", "1.3.6.1.2.1.1.5.0")
        .replace("type: colour", "type: gauge"),
        encoding="utf-8",
    )
    with pytest.raises(ProfileInvalid) as info:
        load_profiles(tmp_path)
    reasons = {p.path: p.reason for p in info.value.problems}
    assert "factor" in reasons["scalars[1].factor"]
    assert "device.uptime_s is already written by" in reasons["scalars[2]"]
    assert "base.yaml" in reasons["scalars[2]"]
    assert "only counters have a rate" in reasons["tables[0].columns[0].rate"]
    assert "not a column" in reasons["tables[0].columns[0].rate.max_from"]
    assert "set by the poller" in reasons["tables[0].columns[1].tag"]
    assert "labels" in reasons["tables[0].columns[2].labels"]
    assert "no scalar named" in reasons["tables[0].rows_from"]
    assert "no column has tag" in reasons["tables[0].links_by"]


def test_file_level_problems(tmp_path: Path) -> None:
    _write(tmp_path, "syntax", "name: [unclosed\n")
    _write(tmp_path, "list", "- just\n- a list\n")
    _write(tmp_path, "orphan", "name: orphan\nextends: nowhere\nmatch: {}\n")
    _write(tmp_path, "loop1", "name: loop1\nextends: loop2\n")
    _write(tmp_path, "loop2", "name: loop2\nextends: loop1\n")
    _write(tmp_path, "dup1", "name: dup\nmatch: {kind: mcu}\n")
    _write(tmp_path, "dup2", "name: dup\nmatch: {kind: mcu}\n")
    with pytest.raises(ProfileInvalid) as info:
        load_profiles(tmp_path)
    reasons = [f"{Path(p.file or '').name}: {p.reason}" for p in info.value.problems]
    joined = "\n".join(reasons)
    assert "syntax.yaml: not valid YAML" in joined
    assert "list.yaml: a profile is a mapping" in joined
    assert "orphan.yaml: no profile named 'nowhere'" in joined
    assert "circular extends" in joined
    assert "dup2.yaml: profile 'dup' is also defined in" in joined


def test_field_types_must_agree_across_profiles_and_matches_must_differ(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a",
        BASE.replace("name: base", "name: a").replace("match: {}", "match: {kind: mcu}"),
    )
    _write(
        tmp_path,
        "b",
        """
name: b
match: {kind: mcu}
scalars:
  - {name: up, oid: 1.3.6.1.2.1.1.3.0, type: gauge, measurement: device, field: uptime_s}
""",
    )
    with pytest.raises(ProfileInvalid) as info:
        load_profiles(tmp_path)
    text = str(info.value)
    assert "device.uptime_s is integer here but float" in text
    assert "the same match as profile 'a'" in text


def test_output_types_cover_every_value_type() -> None:
    assert set(OUTPUT_TYPES) == set(ValueType)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1.3.6.1.2.1.1.3.0", True),
        (".1.3.6.1", True),
        ("1.3", True),
        ("sysUpTime", False),
        ("1", False),
        ("1.3.6.x", False),
        ("3.1.2", False),
        ("1.40.1", False),
        (f"1.3.{2**32}", False),
    ],
)
def test_oids_are_numeric(text: str, ok: bool) -> None:
    if ok:
        assert parse_oid(text)[:2] in ((1, 3),)
    else:
        with pytest.raises(ValueError):
            parse_oid(text)
