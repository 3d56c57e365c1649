"""The endpoints' signing secrets: made here, shown once, kept encrypted.

A signature is an HMAC with the secret itself as its key, so Kassa must be able to read the
secret back: it cannot be hashed like a password or an API token. It is kept encrypted with
Fernet (AES-128-CBC with an HMAC-SHA256, from `cryptography`) under a key derived from
SECRET_KEY, so a copy of the database alone — a backup, a dump, the reports' replica — does
not give anyone the power to sign events as Kassa. SECRET_KEY_FALLBACKS still decrypt, so the
key can be rotated as Django's own signing is; a secret encrypted under a key no longer known
cannot be read, and its endpoint must be made again.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "kassa.webhooks.secret_box"
PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _fernet(key: str | bytes) -> Fernet:
    digest = salted_hmac(SALT, "webhook endpoint secrets", secret=key,
                         algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(settings.SECRET_KEY),
                        *(_fernet(key) for key in settings.SECRET_KEY_FALLBACKS)])


def encrypt(secret: str) -> str:
    return _keys().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    """The secret (cryptography.fernet.InvalidToken when no known key encrypted it)."""
    return _keys().decrypt(token.encode()).decode()
