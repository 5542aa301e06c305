"""Stable SSH host keys for lab devices: Ed25519, derived from the lab seed and the device name.

The same seed gives the same keys on every start, so a ``known_hosts`` file written once keeps
working and host-key checking can be tested (a different seed = a "replaced" device). These are
lab keys, derived from public data: never use them outside the lab.
"""

from __future__ import annotations

import hashlib

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def host_key(seed: str | int, device_name: str) -> asyncssh.SSHKey:
    """The device's Ed25519 host key for this lab seed."""
    material = hashlib.sha256(f"tiandi-lab-host-key\0{seed}\0{device_name}".encode()).digest()
    private = Ed25519PrivateKey.from_private_bytes(material)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return asyncssh.import_private_key(pem)


def public_key_text(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA...`` (no comment)."""
    algorithm, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {data}"


def known_hosts_line(address: str, port: int, key: asyncssh.SSHKey) -> str:
    """One OpenSSH ``known_hosts`` line (``[addr]:port`` form when the port is not 22)."""
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {public_key_text(key)}"


def client_public_key(private_key: str) -> asyncssh.SSHKey:
    """The public half of a client's private key (OpenSSH or PEM text), to authorize it."""
    return asyncssh.import_private_key(private_key).convert_to_public()
