"""Encryption at rest for credentials (cluster tokens, client keys).

Fernet (AES-128-CBC + HMAC) keyed by CREDENTIALS_KEY, or by a key derived from SECRET_KEY
when that is not set. Rotating the key means re-saving the credentials in the admin.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialError(Exception):
    pass


def _fernet() -> Fernet:
    material = settings.CREDENTIALS_KEY or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(b"pampam-credentials:" + material.encode()).digest())
    return Fernet(key)


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialError(
            "Stored credentials cannot be decrypted: CREDENTIALS_KEY (or SECRET_KEY) changed. "
            "Enter the credentials again in the admin."
        ) from None
