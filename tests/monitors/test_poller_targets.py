"""Poll targets from the inventory: credentials read from their references, problems as data
(loud once), the v2c warning, provinces, links, interface names; the latest-state store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from inventory.document import CredentialProfileDoc
from inventory.enums import CredentialKind, DeviceKind, LinkRole, SnmpVersion
from inventory.generator import generate
from inventory.secrets import SecretRef
from inventory.store import apply_document
from monitors.latest import LatestStore, RowState
from monitors.snmp.base import FailureCause, PollFailure
from monitors.targets import TargetBuilder, build_targets, interface_key
from tests.monitors.poller_support import V2C_PROFILE, small_doc, with_v2c


def test_targets_carry_credentials_site_province_and_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = small_doc(monkeypatch, counties=2)
    targets = build_targets(doc, timeout_s=1.5, retries=2, port_offset=10_000)
    assert len(targets) == sum(len(s.devices) for s in doc.sites)
    county = doc.sites[-1]
    router = next(t for t in targets if t.device == f"{county.name}-r1")
    assert router.site == county.name and router.province == doc.sites[1].name
    assert router.snmp is not None and router.problem is None
    assert router.snmp.port == 10_161 and router.snmp.timeout_s == 1.5 and router.snmp.retries == 2
    creds = router.snmp.credentials
    assert creds.version is SnmpVersion.V3 and creds.user == "tiandi-noc"
    assert creds.auth_key == "lab-tiandi-snmp-auth-key"
    assert "lab-tiandi" not in repr(router)  # secrets never print
    assert {(r.role, r.interface) for r in router.links} == {
        (LinkRole.PRIMARY, "GigabitEthernet0/0/0"),
        (LinkRole.BACKUP, "GigabitEthernet0/0/1"),
        (LinkRole.SATELLITE, "GigabitEthernet0/1/0"),
    }
    terminal = next(t for t in targets if t.device == f"{county.name}-sat1")
    assert terminal.served_link is not None and terminal.served_link.link.endswith("-satellite")
    ministry = next(t for t in targets if t.site == "ministry")
    assert ministry.province == "ministry"


def test_a_missing_secret_is_a_config_failure_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    doc = generate(provinces=1, counties=2, seed=1)
    monkeypatch.delenv("TIANDI_SNMP_AUTH_KEY", raising=False)
    monkeypatch.setenv("TIANDI_SNMP_PRIV_KEY", "x" * 12)
    builder = TargetBuilder()
    with caplog.at_level(logging.ERROR, logger="monitors.targets"):
        first = builder.from_document(doc)
        again = builder.from_document(doc)
    for targets in (first, again):
        assert all(t.snmp is None for t in targets)
        problems = {t.problem for t in targets}
        assert len(problems) == 1
        (problem,) = problems
        assert problem is not None and problem.cause is FailureCause.CONFIG
        assert "TIANDI_SNMP_AUTH_KEY is not set" in problem.detail
        assert "snmp-v3-noc" in problem.detail
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # loud once, not per device or per rebuild


def test_secret_files_and_devices_without_a_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = small_doc(monkeypatch, counties=1)
    (tmp_path / "auth").write_text("a-file-auth-key\n", encoding="utf-8")
    profile = doc.credential_profiles[0]
    doc.credential_profiles[0] = profile.model_copy(
        update={"auth_key": SecretRef("file", str(tmp_path / "auth"))}
    )
    doc.sites[0].devices[0].snmp_profile = None
    doc.sites[0].devices[1].snmp_profile = "ssh-noc"  # not an SNMP profile
    targets = build_targets(doc)
    assert (
        targets[0].problem is not None and "no SNMP credential profile" in targets[0].problem.detail
    )
    assert targets[1].problem is not None and "not an SNMP profile" in targets[1].problem.detail
    assert targets[2].snmp is not None
    assert targets[2].snmp.credentials.auth_key == "a-file-auth-key"


def test_v2c_profiles_are_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    doc = small_doc(monkeypatch, counties=1)
    with_v2c(doc, monkeypatch, {d.name for d in doc.sites[0].devices})
    builder = TargetBuilder()
    with caplog.at_level(logging.WARNING, logger="monitors.targets"):
        builder.from_document(doc)
        targets = builder.from_document(doc)
    warnings = [r.getMessage() for r in caplog.records if "v2c" in r.getMessage()]
    assert len(warnings) == 1
    assert "unauthenticated and unencrypted" in warnings[0] and V2C_PROFILE in warnings[0]
    v2 = targets[0].snmp
    assert v2 is not None and v2.credentials.community == "tiandi-lab-v2c"


def test_targets_from_the_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inventory.db import make_engine, make_session_factory
    from tiandi.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'tiandi.db'}"
    upgrade(url)
    doc = small_doc(monkeypatch, counties=1)
    engine = make_engine(url)
    factory: sessionmaker[Session] = make_session_factory(engine)
    try:
        with factory.begin() as session:
            apply_document(session, doc)
        with factory() as session:
            from_db = TargetBuilder().from_session(session)
    finally:
        engine.dispose()
    assert [t.device for t in from_db] == [t.device for t in build_targets(doc)]
    assert all(t.snmp is not None for t in from_db)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Gi0/0/1", "GigabitEthernet0/0/1"),
        ("GE0/0/1", "GigabitEthernet0/0/1"),
        ("Te0/1/0", "TenGigabitEthernet0/1/0"),
        ("Lo0", "Loopback0"),
        ("Po10", "Port-channel10"),
        ("Tu 100", "Tunnel100"),
        ("eth0", "Ethernet0"),
    ],
)
def test_interface_names_match_in_short_and_long_form(a: str, b: str) -> None:
    assert interface_key(a) == interface_key(b)
    assert interface_key("Gi0/0/1") != interface_key("Gi0/0/10")


# ---- the latest-state store ---------------------------------------------------------------------


def test_latest_store_keeps_status_values_interfaces_and_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = small_doc(monkeypatch, counties=1)
    targets = build_targets(doc)
    store = LatestStore()
    store.set_targets(targets)
    county = doc.sites[-1]
    router = next(t for t in targets if t.site == county.name and t.kind is DeviceKind.ROUTER)
    assert store.counts()["never"] == len(targets)
    snap = store.device(router.device)
    assert snap is not None and snap.status.reachable is None

    rows = [
        RowState(
            "interface",
            {"ifname": "Gi0/0/0", "link": f"{county.name}-primary", "role": "primary"},
            {"oper_status": 1, "admin_status": 1, "in_bps": 1e6, "out_bps": 2e6},
        ),
        RowState("interface", {"ifname": "Gi0/0/1"}, {"oper_status": 2, "admin_status": 1}),
    ]
    store.record_success(
        router,
        profile="cisco_ios",
        at=1_700_000_000.0,
        at_monotonic=50.0,
        response_ms=12.5,
        values={"device.uptime_s": 99.0},
        rows=rows,
    )
    primary = store.link(f"{county.name}-primary")
    backup = store.link(f"{county.name}-backup")  # matched by name: Gi0/0/1 is its interface
    assert primary is not None and primary.oper_up is True and primary.at_monotonic == 50.0
    assert primary.state is not None and primary.state.out_bps == 2e6
    assert backup is not None and backup.oper_up is False
    satellite = store.link(f"{county.name}-satellite")
    assert satellite is not None and satellite.state is None  # not reported: unknown
    assert store.link("no-such-link") is None

    failure = PollFailure(FailureCause.TIMEOUT, "no answer")
    store.record_failure(router, failure, at=1_700_000_060.0)
    store.record_failure(router, failure, at=1_700_000_120.0)
    snap = store.device(router.device)
    assert snap is not None
    status = snap.status
    assert status.reachable is False and status.consecutive_failures == 2
    assert status.error == "timeout: no answer" and status.last_ok_at == 1_700_000_000.0
    assert snap.values["device.uptime_s"] == 99.0  # the last values stay, with their time
    assert snap.at == 1_700_000_000.0
    site = store.site(county.name)
    assert site is not None and len(site.links) == 3 and len(site.devices) == 3
    assert store.site("nowhere") is None
    assert store.counts() == {"ok": 0, "failing": 1, "never": len(targets) - 1}
    with pytest.raises(TypeError):
        snap.values["device.uptime_s"] = 1.0  # type: ignore[index]


def test_latest_store_follows_inventory_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = small_doc(monkeypatch, counties=1)
    targets = build_targets(doc)
    store = LatestStore()
    store.set_targets(targets)
    store.record_failure(targets[0], PollFailure(FailureCause.TIMEOUT, "x"), at=1.0)
    store.set_targets([*targets[1:], targets[0]])
    kept = store.device(targets[0].device)
    assert kept is not None and kept.status.consecutive_failures == 1
    store.set_targets(targets[1:])
    assert store.device(targets[0].device) is None
    doc.credential_profiles.append(
        CredentialProfileDoc(
            name="unused", kind=CredentialKind.SNMP, snmp_version=SnmpVersion.V2C,
            community=SecretRef("env", "UNUSED_COMMUNITY"),
        )
    )  # fmt: skip
    assert len(build_targets(doc)) == len(targets)  # an unused, unreadable profile is harmless
