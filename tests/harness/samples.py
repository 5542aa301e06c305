"""Small inventory documents for tests, as the raw mapping a YAML file would load into.

``small_inventory()`` returns a new, independent mapping on every call, so a test can change it
freely: a ministry, two provinces, a prefecture and three counties, each county with a router,
a satellite terminal and a video endpoint on primary/backup/satellite links; an SNMP v3
(authPriv) and an SNMP v2c profile and an SSH profile, all secrets as ``{env: ...}`` references;
one satellite pool.
"""

from __future__ import annotations

from typing import Any

SNMP_V3 = "snmp-v3-ops"
SNMP_V2C = "snmp-v2c-legacy"
SSH = "ssh-ops"
POOL = "vsat-hub-a"


def _device(name: str, kind: str, address: str, **extra: Any) -> dict[str, Any]:
    vendor, platform, model = {
        "router": ("cisco", "cisco_ios", "ISR4331"),
        "satellite_terminal": ("comtech", "comtech_cdm", "CDM-625A"),
        "video_endpoint": ("cisco", "cisco_codec", "Room Kit"),
        "mcu": ("huawei", "huawei_mcu", "ViewPoint 8660"),
    }[kind]
    device: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "vendor": vendor,
        "platform": platform,
        "model": model,
        "mgmt_address": address,
        "snmp_port": 161,
        "ssh_port": 22,
        "snmp_profile": SNMP_V3,
    }
    if kind == "router":
        device["ssh_profile"] = SSH
    device.update(extra)
    return device


def _link(name: str, role: str, router: str, n: int, **extra: Any) -> dict[str, Any]:
    link: dict[str, Any] = {
        "name": name,
        "role": role,
        "router": router,
        "interface": {"primary": "Gi0/0/0", "backup": "Gi0/0/1", "satellite": "Gi0/0/2"}[role],
        "capacity_kbps": {"primary": 8_000, "backup": 4_000, "satellite": 2_048}[role],
        "probe_address": f"10.{n}.{['primary', 'backup', 'satellite'].index(role)}.1",
    }
    if role == "primary":
        link["carrier"] = "电子政务外网"
    link.update(extra)
    return link


def county(name: str, parent: str, n: int, display_name: str) -> dict[str, Any]:
    """A county site with router, terminal, endpoint and all three links; ``n`` makes addresses."""
    router, terminal = f"{name}-r1", f"{name}-sat1"
    return {
        "name": name,
        "display_name": display_name,
        "tier": "county",
        "parent": parent,
        "devices": [
            _device(router, "router", f"10.{n}.255.1"),
            _device(terminal, "satellite_terminal", f"10.{n}.255.2"),
            _device(f"{name}-ep1", "video_endpoint", f"10.{n}.255.3", snmp_profile=SNMP_V2C),
        ],
        "links": [
            _link(f"{name}-primary", "primary", router, n),
            _link(f"{name}-backup", "backup", router, n),
            _link(f"{name}-sat", "satellite", router, n, terminal=terminal, satellite_pool=POOL),
        ],
    }


def small_inventory() -> dict[str, Any]:
    return {
        "version": 1,
        "satellite_pools": [
            {"name": POOL, "capacity_kbps": 155_000, "description": "中星 transponder, hub A"},
        ],
        "credential_profiles": [
            {
                "name": SNMP_V3,
                "kind": "snmp",
                "snmp_version": "v3",
                "user": "tiandi",
                "auth_protocol": "sha",
                "auth_key": {"env": "TIANDI_SNMP_AUTH_KEY"},
                "priv_protocol": "aes",
                "priv_key": {"env": "TIANDI_SNMP_PRIV_KEY"},
            },
            {
                "name": SNMP_V2C,
                "kind": "snmp",
                "snmp_version": "v2c",
                "community": {"file": "/etc/tiandi/snmp-community"},
            },
            {
                "name": SSH,
                "kind": "ssh",
                "username": "tiandi",
                "password": {"env": "TIANDI_SSH_PASSWORD"},
            },
        ],
        "sites": [
            {
                "name": "ministry",
                "display_name": "部本级",
                "tier": "ministry",
                "latitude": 39.9042,
                "longitude": 116.4074,
                "devices": [
                    _device("ministry-r1", "router", "10.0.255.1"),
                    _device("ministry-mcu1", "mcu", "10.0.255.10"),
                ],
                "links": [_link("ministry-primary", "primary", "ministry-r1", 0)],
            },
            {
                "name": "guangdong",
                "display_name": "广东省",
                "tier": "province",
                "parent": "ministry",
                "province_code": "44",
                "devices": [_device("guangdong-r1", "router", "10.1.255.1")],
                "links": [
                    _link("guangdong-primary", "primary", "guangdong-r1", 1),
                    _link("guangdong-backup", "backup", "guangdong-r1", 1),
                ],
            },
            {
                "name": "sichuan",
                "display_name": "四川省",
                "tier": "province",
                "parent": "ministry",
                "province_code": "51",
            },
            {
                "name": "guangdong-shaoguan",
                "display_name": "韶关市",
                "tier": "prefecture",
                "parent": "guangdong",
                "province_code": "4402",
            },
            county("guangdong-shaoguan-qujiang", "guangdong-shaoguan", 10, "曲江区"),
            county("guangdong-shaoguan-renhua", "guangdong-shaoguan", 11, "仁化县"),
            county("sichuan-luding", "sichuan", 20, "泸定县"),
        ],
    }


def site(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The site mapping called ``name`` in a raw document (KeyError if there is none)."""
    for s in doc["sites"]:
        if s["name"] == name:
            found: dict[str, Any] = s
            return found
    raise KeyError(name)
