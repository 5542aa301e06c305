"""Closed vocabularies of the network model, shared by the ORM, the YAML schema and the API."""

from enum import StrEnum


class Tier(StrEnum):
    MINISTRY = "ministry"
    PROVINCE = "province"
    PREFECTURE = "prefecture"
    COUNTY = "county"


class DeviceKind(StrEnum):
    ROUTER = "router"
    SATELLITE_TERMINAL = "satellite_terminal"
    VIDEO_ENDPOINT = "video_endpoint"
    MCU = "mcu"


class LinkRole(StrEnum):
    """Preference order is the declaration order: primary, then backup, then satellite."""

    PRIMARY = "primary"
    BACKUP = "backup"
    SATELLITE = "satellite"


class CredentialKind(StrEnum):
    SNMP = "snmp"
    SSH = "ssh"


class SnmpVersion(StrEnum):
    V2C = "v2c"
    V3 = "v3"


class SnmpAuthProtocol(StrEnum):
    MD5 = "md5"
    SHA = "sha"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


class SnmpPrivProtocol(StrEnum):
    DES = "des"
    AES = "aes"
    AES192 = "aes192"
    AES256 = "aes256"


# A parent of each tier must have one of these tiers; the ministry has no parent.
ALLOWED_PARENT_TIERS: dict[Tier, frozenset[Tier]] = {
    Tier.MINISTRY: frozenset(),
    Tier.PROVINCE: frozenset({Tier.MINISTRY}),
    Tier.PREFECTURE: frozenset({Tier.PROVINCE}),
    Tier.COUNTY: frozenset({Tier.PROVINCE, Tier.PREFECTURE}),
}
