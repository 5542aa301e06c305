"""Request and response bodies that are not inventory document models themselves.

Inventory bodies are the document models of :mod:`inventory.document` (the YAML form, with names,
not ids, as references); devices and links add the ``site`` they belong to, which the YAML
expresses by nesting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator

from api.accounts import USERNAME_PATTERN
from api.roles import Role
from api.security import PASSWORD_MIN_LENGTH
from inventory.document import DeviceDoc, LinkDoc, MaintenanceWindowDoc, Name, SiteDoc
from inventory.enums import Tier

T = TypeVar("T")

# ---- paging ------------------------------------------------------------------------------------

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``total`` counts every match, not just this page."""

    items: list[T]
    total: int = Field(ge=0, examples=[1523])
    limit: int = Field(ge=1, le=MAX_LIMIT, examples=[DEFAULT_LIMIT])
    offset: int = Field(ge=0, examples=[0])


# ---- inventory ---------------------------------------------------------------------------------

_SITE = SiteDoc.model_fields


class SiteIn(BaseModel):
    """A site without its devices and links (those have their own routes). Same fields and rules
    as a site in the inventory YAML (a test keeps the two field lists equal)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "guangdong-shaoguan-qujiang",
                    "display_name": "韶关市曲江区",
                    "tier": "county",
                    "parent": "guangdong-shaoguan",
                    "province_code": "440205",
                    "latitude": 24.68,
                    "longitude": 113.6,
                    "maintenance": [
                        {
                            "start": "2026-12-01T01:00:00+08:00",
                            "end": "2026-12-01T05:00:00+08:00",
                            "reason": "carrier fibre work",
                        }
                    ],
                }
            ]
        },
    )

    name: Name
    display_name: Annotated[str | None, _SITE["display_name"]] = None
    tier: Tier
    parent: Annotated[Name | None, _SITE["parent"]] = None
    province_code: Annotated[str | None, _SITE["province_code"]] = None
    latitude: Annotated[float | None, _SITE["latitude"]] = None
    longitude: Annotated[float | None, _SITE["longitude"]] = None
    maintenance: list[MaintenanceWindowDoc] = Field(
        default_factory=list,
        description="planned-work windows: alarms suppressed, no automatic failover",
    )

    def to_doc(self) -> SiteDoc:
        return SiteDoc.model_validate(self.model_dump())

    @classmethod
    def of(cls, doc: SiteDoc) -> SiteIn:
        return cls.model_validate(doc.model_dump(exclude={"devices", "links"}))


class DeviceIn(DeviceDoc):
    """A device and the site it stands at."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "guangdong-shaoguan-qujiang-r1",
                    "kind": "router",
                    "vendor": "cisco",
                    "platform": "cisco_ios",
                    "model": "ISR4331",
                    "mgmt_address": "10.10.255.1",
                    "snmp_port": 161,
                    "ssh_port": 22,
                    "snmp_profile": "snmp-v3-ops",
                    "ssh_profile": "ssh-ops",
                    "site": "guangdong-shaoguan-qujiang",
                }
            ]
        }
    )

    site: Name = Field(description="name of the site the device stands at")

    def to_doc(self) -> DeviceDoc:
        return DeviceDoc.model_validate(self.model_dump(exclude={"site"}))

    @classmethod
    def of(cls, doc: DeviceDoc, site: str) -> DeviceIn:
        return cls.model_validate({**doc.model_dump(), "site": site})


class LinkIn(LinkDoc):
    """A link and the site it serves."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "guangdong-shaoguan-qujiang-sat",
                    "role": "satellite",
                    "router": "guangdong-shaoguan-qujiang-r1",
                    "interface": "GigabitEthernet0/0/2",
                    "capacity_kbps": 2048,
                    "probe_address": "10.10.2.1",
                    "carrier": None,
                    "terminal": "guangdong-shaoguan-qujiang-sat1",
                    "satellite_pool": "vsat-hub-a",
                    "site": "guangdong-shaoguan-qujiang",
                }
            ]
        }
    )

    site: Name = Field(description="name of the site the link serves")

    def to_doc(self) -> LinkDoc:
        return LinkDoc.model_validate(self.model_dump(exclude={"site"}))

    @classmethod
    def of(cls, doc: LinkDoc, site: str) -> LinkIn:
        return cls.model_validate({**doc.model_dump(), "site": site})


class ImportResult(BaseModel):
    dry_run: bool
    prune: bool
    changed: bool
    created: dict[str, int] = Field(examples=[{"sites": 3, "devices": 9}])
    updated: dict[str, int] = Field(examples=[{"links": 1}])
    deleted: dict[str, int] = Field(examples=[{}])


# ---- users and tokens --------------------------------------------------------------------------

Username = Annotated[
    str,
    Field(
        pattern=USERNAME_PATTERN,
        description="lower-case letters, digits, '.', '_' or '-', starting with a letter",
        examples=["zhang.wei"],
    ),
]
Password = Annotated[SecretStr, Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)]


class UserOut(BaseModel):
    username: Username
    role: Role
    disabled: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "zhang.wei", "role": "operator"}]},
    )

    username: Username
    role: Role = Role.VIEWER
    password: Password | None = Field(
        default=None, description="leave out to have a random password generated and shown once"
    )


class UserCreated(BaseModel):
    user: UserOut
    password: str | None = Field(
        description="the generated password, shown this once; null if one was given"
    )


class UserUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "admin"}, {"disabled": True}]}
    )

    role: Role | None = None
    disabled: bool | None = Field(
        default=None, description="a disabled user's tokens stop working at once"
    )


class NewPassword(BaseModel):
    password: str = Field(description="the generated password, shown this once")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr = Field(max_length=1024)
    new_password: Password


class AccessTokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires", examples=[1800])
    expires_at: datetime


class Me(BaseModel):
    username: Username
    role: Role = Field(description="the role in effect for this request")
    user_role: Role = Field(description="the user's own role")
    api_token: str | None = Field(description="name of the API token used, if any")


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "grafana", "role": "viewer", "expires_at": "2027-01-01T00:00:00Z"}
            ]
        },
    )

    name: Name = Field(description="what the token is for")
    role: Role | None = Field(
        default=None, description="role cap of the token; at most (and by default) your own"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="expiry, with a time zone; none means until revoked"
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("expires_at is in the past")
        return value


class ApiTokenOut(BaseModel):
    id: int
    name: str
    owner: Username
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(
        description="the token, shown this once: send it as 'Authorization: Bearer <token>'",
        examples=["tdk_3q2v5u..."],
    )


# ---- audit -------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(examples=["zhang.wei", "ci/token:deploy"])
    action: str = Field(examples=["device.update"])
    target_type: str = Field(examples=["device"])
    target: str = Field(examples=["guangdong-shaoguan-qujiang-r1"])
    before: Any | None
    after: Any | None
    prev_hash: str
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int = Field(description="records that verified")
    first_broken_id: int | None
    reason: str | None
    head_hash: str | None = Field(
        description="hash of the newest verified record; keep a copy elsewhere to detect a "
        "deleted tail"
    )
