"""Throwaway SSH keys for the local stack: the SDK insists on a real key; the fake only refuses revoked ones."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat


def generate_ssh_private_key() -> str:
    """A fresh Ed25519 private key as `-----BEGIN OPENSSH PRIVATE KEY-----` text.

    OpenSSH format, not PKCS8: `EncordUserClient.create_with_ssh_private_key` loads it with
    `load_ssh_private_key` and rejects anything else with "Not OpenSSH private key format".
    """
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
