"""Whether a key file holds a key the encord SDK can sign with: checked before any command talks to Encord."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

_WANTED = (
    "the encord SDK needs an Ed25519 private key in OpenSSH format, a file that starts with "
    "-----BEGIN OPENSSH PRIVATE KEY-----"
)
_NEW_KEY = "or create one with `ssh-keygen -t ed25519 -f ~/.ssh/encord` and add ~/.ssh/encord.pub to your Encord user"


def key_problem(key: str) -> str | None:
    """Why `key` is not a key the encord SDK can sign with, in words that say what to do; None if it is one.

    Checked here rather than left to the SDK: it says only "Not OpenSSH private key format" for a public key
    or a PKCS8 one, and for a private key of another type its error quotes the whole key.
    """
    text = key.strip()
    if text.startswith(("ssh-ed25519 ", "ssh-rsa ", "ssh-dss ", "ecdsa-sha2-", "sk-")) or "PUBLIC KEY-----" in text:
        return f"this is a public key; {_WANTED}: give the private key (the same file name without .pub)"
    if text.startswith(("-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----")):
        return f"this is a PKCS8 private key; {_WANTED}: convert it to OpenSSH format, {_NEW_KEY}"
    if text.startswith(("-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----")):
        return f"this is a PEM private key of another type; {_WANTED}: {_NEW_KEY}"
    try:
        loaded = load_ssh_private_key(text.encode(), password=None)
    except TypeError:  # what cryptography raises for a passphrase it was not given
        return "the key is protected by a passphrase, which this command cannot ask for: remove it with `ssh-keygen -p`"
    except (ValueError, UnsupportedAlgorithm):
        return f"this is not a private key; {_WANTED}"
    if not isinstance(loaded, Ed25519PrivateKey):
        return f"this is an OpenSSH private key of another type; {_WANTED}: {_NEW_KEY}"
    return None
