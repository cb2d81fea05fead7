"""Encryption at rest for platform credentials, and hashing for what need never be read back.

Tokens and keys we must use later are Fernet ciphertext under `ENCRYPTION_KEYS` (newest
first): decrypting tries every key, encrypting uses the newest, so keys rotate by
prepending a new one and re-encrypting (`stamp keys rotate`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.settings import Settings


class Cipher:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> Cipher:
        return cls(settings.encryption_keys)

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext does not decrypt with any configured key") from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        return self._fernet.rotate(ciphertext)


def sha256_hex(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def keyed_hash(secret: str, value: str) -> str:
    """A hash that cannot be reversed by guessing values without the secret (IPs, emails)."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
