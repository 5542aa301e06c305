"""Whole-document validation that reports every problem at once, each with its path.

Items are parsed one by one so a malformed device does not hide a dangling reference elsewhere;
cross-object rules then run over everything that parsed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from inventory.document import (
    CredentialProfileDoc,
    DeviceDoc,
    InventoryDoc,
    LinkDoc,
    SatellitePoolDoc,
    SiteDoc,
)
from inventory.enums import ALLOWED_PARENT_TIERS, CredentialKind, DeviceKind, LinkRole, Tier
from inventory.errors import InventoryInvalid, Problem

M = TypeVar("M", bound=BaseModel)
_TOP_KEYS = {"version", "satellite_pools", "credential_profiles", "sites"}


def _loc_to_path(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def _errors(prefix: str, err: ValidationError) -> list[Problem]:
    return [Problem(_loc_to_path(prefix, e["loc"]), e["msg"]) for e in err.errors()]


def _raw_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def _parse_list(
    raw: Any, key: str, model: type[M], problems: list[Problem], broken: set[str]
) -> list[M]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(Problem(key, f"must be a list, got {type(raw).__name__}"))
        return []
    parsed: list[M] = []
    for i, item in enumerate(raw):
        try:
            parsed.append(model.model_validate(item))
        except ValidationError as err:
            problems.extend(_errors(f"{key}[{i}]", err))
            if (name := _raw_name(item)) is not None:
                broken.add(name)
    return parsed


def _parse_sites(
    raw: Any, problems: list[Problem], broken: Mapping[str, set[str]]
) -> list[tuple[int, SiteDoc]]:
    """Parse sites, keeping the well-formed devices/links of a site whose other parts are bad."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(Problem("sites", f"must be a list, got {type(raw).__name__}"))
        return []
    out: list[tuple[int, SiteDoc]] = []
    for i, item in enumerate(raw):
        prefix = f"sites[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(prefix, "must be a mapping with at least name and tier"))
            continue
        body = {k: v for k, v in item.items() if k not in ("devices", "links")}
        try:
            site = SiteDoc.model_validate(body)
        except ValidationError as err:
            problems.extend(_errors(prefix, err))
            if (name := _raw_name(item)) is not None:
                broken["sites"].add(name)
            devices = item.get("devices")
            if isinstance(devices, list):
                broken["devices"].update(n for d in devices if (n := _raw_name(d)) is not None)
            continue
        site.devices = _parse_list(
            item.get("devices"), f"{prefix}.devices", DeviceDoc, problems, broken["devices"]
        )
        site.links = _parse_list(
            item.get("links"), f"{prefix}.links", LinkDoc, problems, broken["links"]
        )
        out.append((i, site))
    return out


def _duplicates(names: Iterable[tuple[str, str]], what: str) -> list[Problem]:
    pairs = list(names)
    counts = Counter(name for _, name in pairs)
    seen: set[str] = set()
    problems = []
    for path, name in pairs:
        if counts[name] > 1:
            if name in seen:
                problems.append(Problem(path, f"duplicate {what} name {name!r}"))
            seen.add(name)
    return problems


def check_references(
    doc: InventoryDoc,
    site_index: list[int] | None = None,
    broken: Mapping[str, set[str]] | None = None,
) -> list[Problem]:
    """Cross-object rules over a structurally valid document.

    ``broken`` names, per kind, the objects that are in the file but did not parse: a reference
    to one of them is not reported as unknown, since the object's own problems already are.
    """
    idx = site_index or list(range(len(doc.sites)))
    broken = broken or {}
    broken_sites = broken.get("sites", set())
    broken_devices = broken.get("devices", set())
    broken_profiles = broken.get("credential_profiles", set())
    broken_pools = broken.get("satellite_pools", set())
    problems: list[Problem] = []
    problems += _duplicates(
        ((f"satellite_pools[{i}].name", p.name) for i, p in enumerate(doc.satellite_pools)),
        "satellite pool",
    )
    problems += _duplicates(
        ((f"credential_profiles[{i}].name", p.name) for i, p in enumerate(doc.credential_profiles)),
        "credential profile",
    )
    problems += _duplicates(
        ((f"sites[{i}].name", s.name) for i, s in zip(idx, doc.sites, strict=True)), "site"
    )
    problems += _duplicates(
        (
            (f"sites[{i}].devices[{j}].name", d.name)
            for i, s in zip(idx, doc.sites, strict=True)
            for j, d in enumerate(s.devices)
        ),
        "device",
    )
    problems += _duplicates(
        (
            (f"sites[{i}].links[{j}].name", lk.name)
            for i, s in zip(idx, doc.sites, strict=True)
            for j, lk in enumerate(s.links)
        ),
        "link",
    )

    profiles = {p.name: p.kind for p in doc.credential_profiles}
    pools = {p.name for p in doc.satellite_pools}
    sites = {s.name: s for s in doc.sites}
    devices = {d.name: (s.name, d) for s in doc.sites for d in s.devices}
    ministries = [(i, s) for i, s in zip(idx, doc.sites, strict=True) if s.tier is Tier.MINISTRY]
    for i, s in ministries[1:]:
        problems.append(
            Problem(
                f"sites[{i}].tier", f"only one ministry site is allowed, {s.name!r} is a second"
            )
        )

    for i, site in zip(idx, doc.sites, strict=True):
        sp = f"sites[{i}]"
        allowed = ALLOWED_PARENT_TIERS[site.tier]
        if site.parent is None:
            if allowed:
                wanted = " or ".join(sorted(allowed))
                problems.append(
                    Problem(f"{sp}.parent", f"a {site.tier} site needs a {wanted} parent")
                )
        elif site.parent == site.name:
            problems.append(Problem(f"{sp}.parent", "a site cannot be its own parent"))
        elif site.parent in broken_sites:
            pass
        elif site.parent not in sites:
            problems.append(Problem(f"{sp}.parent", f"unknown site {site.parent!r}"))
        elif sites[site.parent].tier not in allowed:
            parent_tier = sites[site.parent].tier
            if allowed:
                wanted = " or ".join(sorted(allowed))
                reason = (
                    f"the parent of a {site.tier} site must be a {wanted} site, "
                    f"{site.parent!r} is a {parent_tier}"
                )
            else:
                reason = "the ministry site has no parent"
            problems.append(Problem(f"{sp}.parent", reason))

        for j, dev in enumerate(site.devices):
            dp = f"{sp}.devices[{j}]"
            for field, want in (
                ("snmp_profile", CredentialKind.SNMP),
                ("ssh_profile", CredentialKind.SSH),
            ):
                ref = getattr(dev, field)
                if ref is None or ref in broken_profiles:
                    continue
                if ref not in profiles:
                    problems.append(Problem(f"{dp}.{field}", f"unknown credential profile {ref!r}"))
                elif profiles[ref] is not want:
                    problems.append(
                        Problem(
                            f"{dp}.{field}",
                            f"profile {ref!r} is a {profiles[ref]} profile, not {want}",
                        )
                    )

        for j, link in enumerate(site.links):
            lp = f"{sp}.links[{j}]"
            where = devices.get(link.router)
            if where is None and link.router in broken_devices:
                pass
            elif where is None:
                problems.append(Problem(f"{lp}.router", f"unknown device {link.router!r}"))
            else:
                router_site, router = where
                if router_site != site.name:
                    problems.append(
                        Problem(
                            f"{lp}.router",
                            f"router {link.router!r} is at site {router_site!r}, not {site.name!r}",
                        )
                    )
                elif router.kind is not DeviceKind.ROUTER:
                    problems.append(
                        Problem(f"{lp}.router", f"{link.router!r} is a {router.kind}, not a router")
                    )
            if link.role is LinkRole.SATELLITE:
                if link.satellite_pool is None:
                    problems.append(
                        Problem(
                            f"{lp}.satellite_pool", "a satellite link must name its satellite pool"
                        )
                    )
                elif link.satellite_pool not in pools and link.satellite_pool not in broken_pools:
                    problems.append(
                        Problem(
                            f"{lp}.satellite_pool",
                            f"unknown satellite pool {link.satellite_pool!r}",
                        )
                    )
                if link.terminal is None:
                    problems.append(
                        Problem(
                            f"{lp}.terminal",
                            "a satellite link must name the site's satellite terminal",
                        )
                    )
                else:
                    term = devices.get(link.terminal)
                    if term is None and link.terminal in broken_devices:
                        pass
                    elif term is None:
                        problems.append(
                            Problem(f"{lp}.terminal", f"unknown device {link.terminal!r}")
                        )
                    elif term[0] != site.name or term[1].kind is not DeviceKind.SATELLITE_TERMINAL:
                        problems.append(
                            Problem(
                                f"{lp}.terminal",
                                f"{link.terminal!r} is not a satellite terminal at {site.name!r}",
                            )
                        )
            else:
                for field in ("terminal", "satellite_pool"):
                    if getattr(link, field) is not None:
                        problems.append(
                            Problem(
                                f"{lp}.{field}",
                                f"only satellite links have {field}, this is {link.role}",
                            )
                        )
        roles = Counter(link.role for link in site.links)
        for role, n in roles.items():
            if n > 1:
                problems.append(
                    Problem(
                        f"{sp}.links", f"{n} {role} links; a site has at most one link per role"
                    )
                )
    return problems


def validate_raw(raw: Any, file: str | None = None) -> tuple[InventoryDoc | None, list[Problem]]:
    """Validate a loaded YAML/JSON value. Returns the document only if there is no problem."""
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(
            Problem("(document)", f"must be a mapping with a sites: list, got {type(raw).__name__}")
        )
        return None, [Problem(p.path, p.reason, file) for p in problems]
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.append(
            Problem(str(key), f"unknown top-level key; expected one of {sorted(_TOP_KEYS)}")
        )
    version = raw.get("version", 1)
    if version != 1:
        problems.append(
            Problem(
                "version", f"unsupported inventory version {version!r}; this Tiandi reads version 1"
            )
        )
    broken: dict[str, set[str]] = {
        kind: set()
        for kind in ("satellite_pools", "credential_profiles", "sites", "devices", "links")
    }
    pools = _parse_list(
        raw.get("satellite_pools"),
        "satellite_pools",
        SatellitePoolDoc,
        problems,
        broken["satellite_pools"],
    )
    profiles = _parse_list(
        raw.get("credential_profiles"),
        "credential_profiles",
        CredentialProfileDoc,
        problems,
        broken["credential_profiles"],
    )
    indexed = _parse_sites(raw.get("sites"), problems, broken)
    doc = InventoryDoc(
        satellite_pools=pools, credential_profiles=profiles, sites=[s for _, s in indexed]
    )
    problems += check_references(doc, [i for i, _ in indexed], broken)
    if problems:
        return None, [Problem(p.path, p.reason, file) for p in problems]
    return doc, []


def validate_or_raise(raw: Any, file: str | None = None) -> InventoryDoc:
    doc, problems = validate_raw(raw, file)
    if doc is None:
        raise InventoryInvalid(problems)
    return doc
