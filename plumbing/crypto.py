"""Encryption at rest for credentials (cluster tokens, Slack webhooks).

Fernet (AES-128-CBC + HMAC) keyed by CREDENTIALS_KEY, or by a key derived from SECRET_KEY when that
is not set. CREDENTIALS_KEY may name several keys, newest first, separated by commas or newlines
(a mounted file may hold one per line): new values are encrypted with the first, and any of them
decrypts (`MultiFernet`), so a key is rotated without a moment when stored credentials cannot be
read. `manage.py rotate_credentials` then re-encrypts everything with the newest key, after which
the old ones can be dropped (docs/OPERATIONS.md, "Rotating the credentials key").
"""

import base64
import hashlib
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialError(Exception):
    pass


def key_materials() -> list[str]:
    """The configured key materials, newest first (SECRET_KEY when CREDENTIALS_KEY is unset)."""
    materials = [m for m in re.split(r"[,\n]", settings.CREDENTIALS_KEY or "") if m.strip()]
    return [m.strip() for m in materials] or [settings.SECRET_KEY]


def _fernet_for(material: str) -> Fernet:
    key = base64.urlsafe_b64encode(hashlib.sha256(b"pampam-credentials:" + material.encode()).digest())
    return Fernet(key)


def _fernet() -> MultiFernet:
    return MultiFernet([_fernet_for(material) for material in key_materials()])


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def _with_keys(operation, ciphertext: str, refusal: str) -> str:
    """`operation` (MultiFernet.decrypt or .rotate) with the keys on a stored value ("" stays "");
    CredentialError saying `refusal` when no key opens it."""
    if not ciphertext:
        return ""
    try:
        return operation(_fernet(), ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialError(refusal) from None


def decrypt(ciphertext: str) -> str:
    return _with_keys(
        MultiFernet.decrypt,
        ciphertext,
        "Stored credentials cannot be decrypted with any key in CREDENTIALS_KEY (or SECRET_KEY): the key "
        "changed without keeping the old one after the new. Add the old key back, or enter the "
        "credentials again in the admin.",
    )


def encrypted_property(column: str, doc: str = "") -> property:
    """A model property whose value is kept encrypted in the text field `column` ("" stays "")."""

    def read(row) -> str:
        return decrypt(getattr(row, column))

    def write(row, value: str) -> None:
        setattr(row, column, encrypt(value))

    return property(read, write, doc=doc)


def rotate(ciphertext: str) -> str:
    """The same secret encrypted with the newest key (CredentialError if no key decrypts it)."""
    return _with_keys(
        MultiFernet.rotate, ciphertext, "A stored credential cannot be decrypted with any key in CREDENTIALS_KEY."
    )
