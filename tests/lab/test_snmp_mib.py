"""TIANDI-LAB-MIB: the shipped pysnmp module is what pysmi makes of the source, and its names
resolve to exactly the OIDs the lab's agents serve (``lab.snmp.oids``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pysnmp.smi import builder, view

from lab.mibs import COMPILED_DIR, MIB_DIR
from lab.mibs.compile import compile_mibs
from lab.snmp import oids
from lab.snmp.views import VIEWS


@pytest.fixture(scope="module")
def mib_view() -> view.MibViewController:
    mib_builder = builder.MibBuilder()
    mib_builder.add_mib_sources(builder.DirMibSource(str(COMPILED_DIR)))
    mib_builder.load_modules("TIANDI-LAB-MIB")
    return view.MibViewController(mib_builder)


def test_shipped_module_is_up_to_date(tmp_path: Path) -> None:
    (fresh,) = compile_mibs(tmp_path)
    shipped = COMPILED_DIR / fresh.name
    assert shipped.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "lab/mibs/compiled is stale: run python -m lab.mibs.compile"
    )


def test_names_resolve_to_the_served_oids(mib_view: view.MibViewController) -> None:
    mib_builder = mib_view.mibBuilder
    for name, oid in oids.TIANDI_LAB_NAMES.items():
        (symbol,) = mib_builder.import_symbols("TIANDI-LAB-MIB", name)
        assert tuple(symbol.getName()) == oid, name


def test_every_served_lab_object_is_defined(mib_view: view.MibViewController) -> None:
    served = {
        obj.oid
        for v in VIEWS.values()
        for obj in v.objects
        if obj.oid[: len(oids.TIANDI_LAB_MIB)] == oids.TIANDI_LAB_MIB
    }
    assert len(served) == 12 + 3 + 8 + 3 + 2 + 3  # sat, video scalars+columns, mcu
    for oid in served:
        found, label, suffix = mib_view.get_node_name(oid)
        assert tuple(found) == oid and not suffix, (oid, label)


def test_modcod_enumeration_matches_dvb_s2_numbering() -> None:
    from lab.build import MODCODS  # the lab core's ACM table, the values agents report

    source = (MIB_DIR / "TIANDI-LAB-MIB.txt").read_text(encoding="utf-8")
    pattern = r"\b((?:qpsk|psk8x|apsk\d\dx)\w+)\((\d+)\)"
    enum = {int(n): label for label, n in re.findall(pattern, source)}
    assert sorted(enum) == [m.number for m in MODCODS]
    for m in MODCODS:
        scheme, rate = m.name.split()
        prefix = {"QPSK": "qpsk", "8PSK": "psk8x", "16APSK": "apsk16x", "32APSK": "apsk32x"}[scheme]
        assert enum[m.number] == prefix + rate.replace("/", "by"), m


def test_mib_says_the_arc_is_lab_only() -> None:
    source = (MIB_DIR / "TIANDI-LAB-MIB.txt").read_text(encoding="utf-8")
    assert "::= { enterprises 59999 }" in source
    assert "NOT" in source and "registered with IANA" in source
