"""SNMPv3 User-based Security Model for the lab's agents: keys, digests, privacy, engine IDs.

- Keys: password → Ku (RFC 3414 A.2: one megabyte of the repeated password through the hash,
  the expensive part, cached per password) → Kul localised to an engine ID (cheap, cached per
  engine ID).
- Authentication: HMAC-MD5-96 and HMAC-SHA-96 (RFC 3414), HMAC-SHA-2 (RFC 7860: SHA-224/128,
  SHA-256/192, SHA-384/256, SHA-512/384).
- Privacy: AES-CFB-128 (RFC 3826); AES-192/256 with the Blumenthal key extension (the
  draft-blumenthal-aes-usm-04 variant net-snmp calls AES-192/AES-256). DES is not offered.
- Engine IDs: RFC 3411 format 3 (MAC address) under the vendor's enterprise number, the MAC
  derived from the device name, so every device has its own, stable across lab restarts.

Secrets live in ``Credentials`` and the derived key objects; neither prints them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol, SnmpVersion

ONE_MEGABYTE = 1_048_576
TIME_WINDOW_S = 150  # RFC 3414 3.2 step 7
MAX_BOOTS = 2_147_483_647

# Private enterprise numbers used in engine IDs and sysObjectIDs.
LAB_ENTERPRISE = 59999  # Tiandi lab arc: NOT IANA-registered, lab use only (see lab/mibs/)
VENDOR_ENTERPRISE: Mapping[str, int] = {
    "cisco": 9,
    "comtech": 6247,
    "idirect": 13732,
    "huawei": 2011,
    "polycom": 13885,
}


class UnsupportedCredentials(ValueError):
    """The credential profile asks for something the lab agent does not implement."""


@dataclass(frozen=True, slots=True)
class AuthAlgorithm:
    name: str  # hashlib name
    mac_len: int  # truncated digest length carried in msgAuthenticationParameters


AUTH_ALGORITHMS: Mapping[SnmpAuthProtocol, AuthAlgorithm] = {
    SnmpAuthProtocol.MD5: AuthAlgorithm("md5", 12),
    SnmpAuthProtocol.SHA: AuthAlgorithm("sha1", 12),
    SnmpAuthProtocol.SHA224: AuthAlgorithm("sha224", 16),
    SnmpAuthProtocol.SHA256: AuthAlgorithm("sha256", 24),
    SnmpAuthProtocol.SHA384: AuthAlgorithm("sha384", 32),
    SnmpAuthProtocol.SHA512: AuthAlgorithm("sha512", 48),
}
AES_KEY_BYTES: Mapping[SnmpPrivProtocol, int] = {
    SnmpPrivProtocol.AES: 16,
    SnmpPrivProtocol.AES192: 24,
    SnmpPrivProtocol.AES256: 32,
}


class SnmpCredentialLike(Protocol):
    """What the agent needs from a device's resolved SNMP credential profile.

    ``Credentials`` below satisfies it, and so does any object with these attributes (the lab
    runner's resolved profiles, for instance), so nothing has to be copied.
    """

    @property
    def version(self) -> SnmpVersion: ...
    @property
    def community(self) -> str | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def auth_protocol(self) -> SnmpAuthProtocol | None: ...
    @property
    def auth_key(self) -> str | None: ...
    @property
    def priv_protocol(self) -> SnmpPrivProtocol | None: ...
    @property
    def priv_key(self) -> str | None: ...


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A device's SNMP credentials with secret values resolved. Never prints the secrets."""

    version: SnmpVersion
    community: str | None = None
    user: str | None = None
    auth_protocol: SnmpAuthProtocol | None = None
    auth_key: str | None = None
    priv_protocol: SnmpPrivProtocol | None = None
    priv_key: str | None = None

    @classmethod
    def v2c(cls, community: str) -> Credentials:
        return cls(SnmpVersion.V2C, community=community)

    @classmethod
    def v3(
        cls,
        user: str,
        auth_key: str,
        priv_key: str | None,
        *,
        auth_protocol: SnmpAuthProtocol = SnmpAuthProtocol.SHA,
        priv_protocol: SnmpPrivProtocol | None = SnmpPrivProtocol.AES,
    ) -> Credentials:
        return cls(
            SnmpVersion.V3,
            user=user,
            auth_protocol=auth_protocol,
            auth_key=auth_key,
            priv_protocol=priv_protocol if priv_key is not None else None,
            priv_key=priv_key,
        )

    def __repr__(self) -> str:
        if self.version is SnmpVersion.V2C:
            return "Credentials(version='v2c', community=REDACTED)"
        return (
            f"Credentials(version='v3', user={self.user!r}, auth={self.auth_protocol}, "
            f"priv={self.priv_protocol}, keys=REDACTED)"
        )


# ---- keys -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def password_to_key(password: str, hash_name: str) -> bytes:
    """Ku (RFC 3414 A.2.1 / RFC 7860): hash of the password repeated to one megabyte."""
    raw = password.encode("utf-8")
    if len(raw) < 8:
        # RFC 3414 11.2; net-snmp and pysnmp refuse shorter pass phrases too.
        raise UnsupportedCredentials("an SNMPv3 pass phrase must be at least 8 characters")
    repeated = (raw * (ONE_MEGABYTE // len(raw) + 1))[:ONE_MEGABYTE]
    return hashlib.new(hash_name, repeated).digest()


def localize_key(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku || engineID || Ku) (RFC 3414 A.2.2)."""
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def extend_key_blumenthal(kul: bytes, size: int, hash_name: str) -> bytes:
    """Lengthen a localised key for AES-192/256 (draft-blumenthal-aes-usm-04 3.1.2.1)."""
    key = kul
    while len(key) < size:
        key += hashlib.new(hash_name, key).digest()
    return key[:size]


@dataclass(frozen=True, slots=True, repr=False)
class UsmKeys:
    """A user's keys localised to one engine ID: everything a message needs, ready to use."""

    user_name: bytes
    auth: AuthAlgorithm | None
    auth_key: bytes
    priv_key: bytes  # AES key of the right size, empty without privacy
    aes: algorithms.AES | None = None  # built once: key checks cost more than the cipher

    def __repr__(self) -> str:
        return f"UsmKeys(user={self.user_name!r}, keys=REDACTED)"


def usm_keys(creds: SnmpCredentialLike, engine_id: bytes) -> UsmKeys:
    """Validate a v3 credential and localise its keys to ``engine_id``."""
    if creds.version is not SnmpVersion.V3 or not creds.user:
        raise UnsupportedCredentials("an SNMPv3 credential needs a user name")
    if creds.auth_protocol is None or creds.auth_key is None:
        if creds.priv_key is not None:
            raise UnsupportedCredentials("privacy without authentication is not a USM level")
        return UsmKeys(creds.user.encode(), None, b"", b"")
    auth = AUTH_ALGORITHMS[creds.auth_protocol]
    auth_key = localize_key(password_to_key(creds.auth_key, auth.name), engine_id, auth.name)
    priv_key = b""
    if creds.priv_key is not None:
        if creds.priv_protocol is None or creds.priv_protocol not in AES_KEY_BYTES:
            raise UnsupportedCredentials(
                f"privacy protocol {creds.priv_protocol} is not offered by the lab agent; "
                "use aes, aes192 or aes256"
            )
        size = AES_KEY_BYTES[creds.priv_protocol]
        kul = localize_key(password_to_key(creds.priv_key, auth.name), engine_id, auth.name)
        priv_key = extend_key_blumenthal(kul, size, auth.name)
    aes = algorithms.AES(priv_key) if priv_key else None
    return UsmKeys(creds.user.encode(), auth, auth_key, priv_key, aes)


# ---- digests and privacy --------------------------------------------------------------------


def digest(keys: UsmKeys, message: bytes) -> bytes:
    """The truncated HMAC over the whole message (auth parameters zeroed by the caller)."""
    assert keys.auth is not None
    return hmac.digest(keys.auth_key, message, keys.auth.name)[: keys.auth.mac_len]


def verify(keys: UsmKeys, message: bytes, offset: int, received: bytes) -> bool:
    if keys.auth is None or len(received) != keys.auth.mac_len:
        return False
    zeroed = message[:offset] + bytes(len(received)) + message[offset + len(received) :]
    return hmac.compare_digest(digest(keys, zeroed), received)


def sign(keys: UsmKeys, message: bytes, offset: int) -> bytes:
    """``message`` with its zero-filled auth parameters at ``offset`` replaced by the digest."""
    mac = digest(keys, message)
    return message[:offset] + mac + message[offset + len(mac) :]


def _aes(keys: UsmKeys, boots: int, time: int, salt: bytes) -> Cipher[CFB]:
    """AES-CFB-128 with the RFC 3826 IV: engineBoots, engineTime, 64-bit salt."""
    if keys.aes is None:
        raise UnsupportedCredentials(f"user {keys.user_name!r} has no privacy key")
    iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + salt
    return Cipher(keys.aes, CFB(iv))


def encrypt(keys: UsmKeys, boots: int, time: int, salt: bytes, plaintext: bytes) -> bytes:
    enc = _aes(keys, boots, time, salt).encryptor()
    return enc.update(plaintext) + enc.finalize()


def decrypt(keys: UsmKeys, boots: int, time: int, salt: bytes, ciphertext: bytes) -> bytes:
    dec = _aes(keys, boots, time, salt).decryptor()
    return dec.update(ciphertext) + dec.finalize()


# ---- engine identity ------------------------------------------------------------------------


def device_mac(name: str) -> bytes:
    """A stable, locally administered unicast MAC address for a device name."""
    raw = bytearray(hashlib.sha256(name.encode("utf-8")).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def enterprise_for(vendor: str) -> int:
    return VENDOR_ENTERPRISE.get(vendor.strip().lower(), LAB_ENTERPRISE)


def engine_id_for(name: str, vendor: str) -> bytes:
    """snmpEngineID (RFC 3411 SnmpEngineID, format 3 = MAC) for a device."""
    return (0x80000000 | enterprise_for(vendor)).to_bytes(4, "big") + b"\x03" + device_mac(name)


@dataclass(slots=True)
class SaltCounter:
    """The 64-bit salt an AES sender must never repeat under one key (RFC 3826 3.1.2.1)."""

    value: int = field(default_factory=lambda: secrets.randbits(64))

    def next(self) -> bytes:
        self.value = (self.value + 1) & 0xFFFF_FFFF_FFFF_FFFF
        return self.value.to_bytes(8, "big")
