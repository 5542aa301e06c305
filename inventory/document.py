"""The inventory as a document: the YAML form that is imported, exported, validated and generated.

Structure and field-level rules live here (pydantic); rules that span objects — uniqueness,
references, hierarchy — live in ``inventory.validation`` so that every problem is reported at once.
Field order here is the order written to YAML, so export output is stable.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from inventory.enums import (
    CredentialKind,
    DeviceKind,
    LinkRole,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpVersion,
    Tier,
)
from inventory.secrets import SecretRef

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Stable identifier: lower-case ASCII letters, digits, '.', '_' or '-' "
        "(at most 63 characters), e.g. a pinyin slug",
        examples=["guangdong-shaoguan-r1"],
    ),
]


def _secret_from_document(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((source, name),) = value.items()
        if source in ("env", "file") and isinstance(name, str):
            return SecretRef(source, name)
    if isinstance(value, str) and value.startswith(("env:", "file:")):
        return SecretRef.parse(value)
    raise ValueError(
        "a secret must be a reference, {env: VAR_NAME} or {file: /abs/path}; never write the "
        "secret value itself into the inventory"
    )


Secret = Annotated[
    SecretRef,
    BeforeValidator(_secret_from_document),
    PlainSerializer(lambda ref: ref.to_document(), return_type=dict[str, str]),
    Field(
        json_schema_extra={
            "type": "object",
            "description": "Reference to a secret: {env: VAR} or {file: /path}",
            "examples": [{"env": "TIANDI_SNMP_AUTH_KEY"}],
        }
    ),
]


def _ip_text(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


IpAddress = Annotated[
    str, BeforeValidator(_ip_text), Field(examples=["10.44.2.1"], description="IPv4 or IPv6")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=False)


class CredentialProfileDoc(_Strict):
    """How to authenticate to a device: SNMP (v2c community or v3 USM user) or SSH."""

    name: Name
    kind: CredentialKind
    # SNMP
    snmp_version: SnmpVersion | None = None
    community: Secret | None = None
    user: str | None = Field(default=None, max_length=32)
    auth_protocol: SnmpAuthProtocol | None = None
    auth_key: Secret | None = None
    priv_protocol: SnmpPrivProtocol | None = None
    priv_key: Secret | None = None
    # SSH
    username: str | None = Field(default=None, max_length=64)
    password: Secret | None = None
    private_key: Secret | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> CredentialProfileDoc:
        snmp_fields = (
            "snmp_version",
            "community",
            "user",
            "auth_protocol",
            "auth_key",
            "priv_protocol",
            "priv_key",
        )
        ssh_fields = ("username", "password", "private_key")
        if self.kind is CredentialKind.SNMP:
            stray = [f for f in ssh_fields if getattr(self, f) is not None]
            if stray:
                raise ValueError(f"an snmp profile cannot have {', '.join(stray)}")
            if self.snmp_version is None:
                raise ValueError("an snmp profile needs snmp_version (v3 or v2c)")
            if self.snmp_version is SnmpVersion.V2C:
                if self.community is None:
                    raise ValueError("an SNMP v2c profile needs community: {env: VAR}")
                v3 = [f for f in snmp_fields[2:] if getattr(self, f) is not None]
                if v3:
                    raise ValueError(f"a v2c profile cannot have v3 fields: {', '.join(v3)}")
            else:
                if self.community is not None:
                    raise ValueError("a v3 profile has no community; use user/auth_key/priv_key")
                # authPriv is the only level Tiandi accepts: the network crosses carriers.
                missing = [f for f in snmp_fields[2:] if getattr(self, f) is None]
                if missing:
                    raise ValueError(
                        "an SNMP v3 profile must be authPriv: missing " + ", ".join(missing)
                    )
        else:
            stray = [f for f in snmp_fields if getattr(self, f) is not None]
            if stray:
                raise ValueError(f"an ssh profile cannot have {', '.join(stray)}")
            if not self.username:
                raise ValueError("an ssh profile needs username")
            if self.password is None and self.private_key is None:
                raise ValueError("an ssh profile needs password or private_key (or both)")
        return self


class SatellitePoolDoc(_Strict):
    """Shared satellite capacity (transponder / hub bandwidth) drawn on by sites on satellite."""

    name: Name
    capacity_kbps: int = Field(gt=0, le=10_000_000, examples=[155_000])
    description: str | None = None


class DeviceDoc(_Strict):
    name: Name
    kind: DeviceKind
    vendor: str = Field(min_length=1, max_length=64, examples=["cisco"])
    platform: str = Field(
        min_length=1,
        max_length=64,
        description="netmiko device_type or Tiandi driver name",
        examples=["cisco_ios"],
    )
    model: str | None = Field(default=None, max_length=64, examples=["ISR4331"])
    mgmt_address: IpAddress
    snmp_port: int = Field(default=161, ge=1, le=65535)
    ssh_port: int = Field(default=22, ge=1, le=65535)
    snmp_profile: Name | None = None
    ssh_profile: Name | None = None


class LinkDoc(_Strict):
    name: Name
    role: LinkRole
    router: Name = Field(description="the router (at the same site) whose interface carries it")
    interface: str = Field(min_length=1, max_length=64, examples=["GigabitEthernet0/0/1"])
    capacity_kbps: int = Field(gt=0, le=100_000_000, examples=[8_000])
    probe_address: IpAddress = Field(description="far-end address the link probes target")
    carrier: str | None = Field(default=None, max_length=64, examples=["电子政务外网"])
    terminal: Name | None = Field(
        default=None, description="satellite links: the site's satellite terminal"
    )
    satellite_pool: Name | None = Field(
        default=None, description="satellite links: the shared capacity pool they draw from"
    )


class MaintenanceWindowDoc(_Strict):
    """A planned-work window: alarms are suppressed and no automatic failover touches the site."""

    start: AwareDatetime = Field(examples=["2026-12-01T01:00:00+08:00"])
    end: AwareDatetime = Field(examples=["2026-12-01T05:00:00+08:00"])
    reason: str | None = Field(default=None, max_length=200, examples=["carrier fibre work"])

    @model_validator(mode="after")
    def _ends_after_start(self) -> MaintenanceWindowDoc:
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        if self.end - self.start > timedelta(days=31):
            raise ValueError("a maintenance window lasts at most 31 days; split longer work")
        return self

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


class SiteDoc(_Strict):
    name: Name
    display_name: str | None = Field(default=None, max_length=128, examples=["韶关市曲江区"])
    tier: Tier
    parent: Name | None = None
    province_code: str | None = Field(
        default=None, pattern=r"^[0-9]{2,6}$", description="GB/T 2260 division code"
    )
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    maintenance: list[MaintenanceWindowDoc] = Field(default_factory=list)
    devices: list[DeviceDoc] = Field(default_factory=list)
    links: list[LinkDoc] = Field(default_factory=list)


class InventoryDoc(_Strict):
    """A whole inventory; ``sites`` nest their devices and links."""

    version: Literal[1] = 1
    satellite_pools: list[SatellitePoolDoc] = Field(default_factory=list)
    credential_profiles: list[CredentialProfileDoc] = Field(default_factory=list)
    sites: list[SiteDoc] = Field(default_factory=list)
