"""Export the inventory as an Ansible YAML inventory, grouped by province and by device kind.

Shape (the standard YAML inventory)::

    all:
      children:
        router:                      # one group per device kind, holding the host variables
          hosts:
            gd-shaoguan-qujiang-r1: {ansible_host: 127.1.4.9, ansible_network_os: cisco.ios.ios,
                                     ansible_connection: ansible.netcommon.network_cli, ...}
        province_guangdong:          # one group per provincial node: its own hosts and those of
          hosts:                     # the sites below it
            gd-shaoguan-qujiang-r1:
        ministry:                    # the ministry site's hosts
          hosts: ...

No credential appears, not even a reference or a profile name: playbooks get credentials from
their own vault or environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from inventory.document import DeviceDoc, InventoryDoc, SiteDoc
from inventory.enums import Tier

# Tiandi platform (netmiko device_type) -> Ansible network OS. Platforms not listed (video codecs,
# satellite modems, MCUs) have no Ansible network collection, so they get no ansible_network_os.
NETWORK_OS: dict[str, str] = {
    "arista_eos": "arista.eos.eos",
    "cisco_ios": "cisco.ios.ios",
    "cisco_nxos": "cisco.nxos.nxos",
    "cisco_xe": "cisco.ios.ios",
    "cisco_xr": "cisco.iosxr.iosxr",
    "juniper_junos": "junipernetworks.junos.junos",
}
NETWORK_CONNECTION = "ansible.netcommon.network_cli"
MINISTRY_GROUP = "ministry"

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def province_group(province_site: str) -> str:
    """Ansible group of a provincial node: ``province_`` + its name, as a valid identifier."""
    return "province_" + _GROUP_UNSAFE.sub("_", province_site)


def host_vars(site: SiteDoc, device: DeviceDoc) -> dict[str, Any]:
    hv: dict[str, Any] = {
        "ansible_host": device.mgmt_address,
        "tiandi_kind": device.kind.value,
        "tiandi_platform": device.platform,
        "tiandi_site": site.name,
        "tiandi_vendor": device.vendor,
    }
    if device.ssh_port != 22:
        hv["ansible_port"] = device.ssh_port
    network_os = NETWORK_OS.get(device.platform)
    if network_os is not None:
        hv["ansible_network_os"] = network_os
        hv["ansible_connection"] = NETWORK_CONNECTION
    return hv


def _area_groups(doc: InventoryDoc) -> dict[str, str]:
    """Site name -> its province group (the ministry group for the ministry); absent if neither."""
    sites = {s.name: s for s in doc.sites}
    groups: dict[str, str] = {}
    for site in doc.sites:
        node: SiteDoc | None = site
        seen: set[str] = set()
        # Walk up to the provincial node; ``seen`` guards against a cycle in an unvalidated doc.
        while node is not None and node.tier not in (Tier.PROVINCE, Tier.MINISTRY):
            seen.add(node.name)
            parent = node.parent
            node = sites.get(parent) if parent is not None and parent not in seen else None
        if node is None:
            continue
        groups[site.name] = (
            MINISTRY_GROUP if node.tier is Tier.MINISTRY else province_group(node.name)
        )
    return groups


def to_ansible_inventory(doc: InventoryDoc) -> dict[str, Any]:
    """The inventory as the dict of an Ansible YAML inventory, groups and hosts sorted by name."""
    area_of = _area_groups(doc)
    children: dict[str, dict[str, dict[str, Any]]] = {}
    for site in doc.sites:
        area = area_of.get(site.name)
        for device in site.devices:
            # Host variables live in the kind group only; other groups just list the host.
            children.setdefault(device.kind.value, {"hosts": {}})["hosts"][device.name] = host_vars(
                site, device
            )
            if area is not None:
                children.setdefault(area, {"hosts": {}})["hosts"][device.name] = None
    ordered = {
        group: {"hosts": dict(sorted(members["hosts"].items()))}
        for group, members in sorted(children.items())
    }
    return {"all": {"children": ordered}}


def dump_ansible_inventory(doc: InventoryDoc) -> str:
    out: str = yaml.dump(
        to_ansible_inventory(doc),
        Dumper=_Dumper,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )
    return out


def write_ansible_inventory(doc: InventoryDoc, path: str | Path) -> None:
    Path(path).write_text(dump_ansible_inventory(doc), encoding="utf-8")
