"""Tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the deployment's secret key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class Unreadable(Exception):
    """A sealed token this key cannot open: sealed under another secret key, or altered."""


class Sealer:
    """Encrypts and decrypts the OAuth tokens kept in the database; never shows the key."""

    def __init__(self, secret_key: str) -> None:
        # a key of its own (a labelled hash), so the deployment's key is never used for two things
        derived = hashlib.sha256(b"perezvon-amocrm-tokens:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "Sealer()"

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise Unreadable("a stored token cannot be decrypted with this deployment's secret key") from exc
