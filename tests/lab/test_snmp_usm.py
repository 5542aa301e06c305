"""SNMPv3 USM pieces: RFC 3414 key vectors, pysnmp agreement, engine IDs, secrets kept out."""

from __future__ import annotations

import pytest
from pysnmp.proto.secmod.rfc3414 import localkey

from inventory.enums import SnmpAuthProtocol, SnmpPrivProtocol
from lab.snmp import usm
from lab.snmp.usm import Credentials

RFC_ENGINE_ID = bytes.fromhex("000000000000000000000002")


@pytest.mark.parametrize(
    ("hash_name", "ku", "kul"),
    [
        # RFC 3414 A.3.1 and A.3.2: password "maplesyrup"
        ("md5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),
        (
            "sha1",
            "9fb5cc0381497b3793528939ff788d5d79145211",
            "6695febc9288e36282235fc7151f128497b38f3f",
        ),
    ],
)
def test_rfc3414_key_vectors(hash_name: str, ku: str, kul: str) -> None:
    key = usm.password_to_key("maplesyrup", hash_name)
    assert key.hex() == ku
    assert usm.localize_key(key, RFC_ENGINE_ID, hash_name).hex() == kul


@pytest.mark.parametrize("hash_name", ["sha224", "sha256", "sha384", "sha512"])
def test_sha2_keys_agree_with_pysnmp(hash_name: str) -> None:
    import hashlib

    from pyasn1.type.univ import OctetString

    algo = getattr(hashlib, hash_name)
    theirs = localkey.localize_key(
        localkey.hash_passphrase(OctetString("a-long-pass-phrase"), algo),
        OctetString(RFC_ENGINE_ID),
        algo,
    )
    ours = usm.localize_key(
        usm.password_to_key("a-long-pass-phrase", hash_name), RFC_ENGINE_ID, hash_name
    )
    assert ours == bytes(theirs)


def test_localised_keys_differ_per_engine() -> None:
    creds = Credentials.v3("ops", "auth-pass-1", "priv-pass-1")
    a = usm.usm_keys(creds, usm.engine_id_for("county-r1", "cisco"))
    b = usm.usm_keys(creds, usm.engine_id_for("county-r2", "cisco"))
    assert a.auth_key != b.auth_key and a.priv_key != b.priv_key
    assert len(a.auth_key) == 20 and len(a.priv_key) == 16  # SHA-1, AES-128


def test_aes256_key_is_extended_blumenthal_style() -> None:
    creds = Credentials.v3(
        "ops", "auth-pass-1", "priv-pass-1", priv_protocol=SnmpPrivProtocol.AES256
    )
    keys = usm.usm_keys(creds, RFC_ENGINE_ID)
    kul = usm.localize_key(usm.password_to_key("priv-pass-1", "sha1"), RFC_ENGINE_ID, "sha1")
    import hashlib

    assert keys.priv_key == (kul + hashlib.sha1(kul).digest())[:32]


def test_digest_round_trip_and_tamper() -> None:
    keys = usm.usm_keys(
        Credentials.v3("ops", "auth-pass-1", None, auth_protocol=SnmpAuthProtocol.SHA256),
        RFC_ENGINE_ID,
    )
    assert keys.auth is not None and keys.auth.mac_len == 24
    message = b"\x30\x10" + bytes(24) + b"payload"
    signed = usm.sign(keys, message, 2)
    assert usm.verify(keys, signed, 2, signed[2:26])
    tampered = signed[:-1] + b"X"
    assert not usm.verify(keys, tampered, 2, tampered[2:26])


def test_aes_round_trip() -> None:
    keys = usm.usm_keys(Credentials.v3("ops", "auth-pass-1", "priv-pass-1"), RFC_ENGINE_ID)
    cipher = usm.encrypt(keys, 3, 1234, b"saltsalt", b"scoped pdu bytes")
    assert cipher != b"scoped pdu bytes" and len(cipher) == 16
    assert usm.decrypt(keys, 3, 1234, b"saltsalt", cipher) == b"scoped pdu bytes"
    assert usm.decrypt(keys, 3, 1235, b"saltsalt", cipher) != b"scoped pdu bytes"


def test_engine_id_is_rfc3411_mac_format_and_stable() -> None:
    eid = usm.engine_id_for("guangdong-shaoguan-r1", "cisco")
    assert eid[:4] == bytes.fromhex("80000009")  # enterprise 9 with the high bit set
    assert eid[4] == 3 and len(eid) == 11  # format 3: a MAC address follows
    assert eid[5] & 0x03 == 0x02  # locally administered, unicast
    assert eid == usm.engine_id_for("guangdong-shaoguan-r1", "Cisco")
    assert usm.engine_id_for("x", "nobody")[:4] == (0x80000000 | usm.LAB_ENTERPRISE).to_bytes(4)


def test_secrets_never_print() -> None:
    v3 = Credentials.v3("ops", "auth-secret-xyz", "priv-secret-xyz")
    v2 = Credentials.v2c("community-secret-xyz")
    keys = usm.usm_keys(v3, RFC_ENGINE_ID)
    for text in (repr(v3), str(v3), repr(v2), str(v2), repr(keys), str([v3, v2])):
        assert "secret-xyz" not in text and "REDACTED" in text
    assert keys.auth_key.hex() not in repr(keys)


def test_unsupported_credentials_are_refused() -> None:
    with pytest.raises(usm.UnsupportedCredentials, match="des"):
        usm.usm_keys(
            Credentials.v3("ops", "auth-pass-1", "priv-pass-1", priv_protocol=SnmpPrivProtocol.DES),
            RFC_ENGINE_ID,
        )
    with pytest.raises(usm.UnsupportedCredentials, match="8 characters"):
        usm.usm_keys(Credentials.v3("ops", "short", None), RFC_ENGINE_ID)
