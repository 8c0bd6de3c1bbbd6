"""Password hashing and token helpers."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

API_TOKEN_PREFIX = "pst_"  # noqa: S105  (a marker, not a secret)


# Each Argon2 hash holds ~64 MB while it runs: a shift logging in at once must queue, not
# take the server's memory (one hash per core keeps the CPU busy anyway).
_HASHING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    with _HASHING:
        return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether the password matches; always spends the hashing time, even with no hash."""
    if password_hash is None:
        hash_password(password)
        return False
    try:
        with _HASHING:
            return bool(_hasher().verify(password, password_hash))
    except Exception:  # a malformed stored hash is a failed login, not a crash
        return False


def new_api_token() -> str:
    """A fresh API token in its one-time plain form."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 hex digest of a high-entropy token, as it is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def sign(value: str, *, secret_key: str) -> str:
    """`value.signature`, HMAC-SHA256 under the app's secret key."""
    signature = hmac.new(secret_key.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{value}.{signature}"


def unsign(signed: str | None, *, secret_key: str) -> str | None:
    """The value of a signed string, or None if it was tampered with."""
    if not signed or "." not in signed:
        return None
    value, _, _signature = signed.rpartition(".")
    return value if hmac.compare_digest(sign(value, secret_key=secret_key), signed) else None
