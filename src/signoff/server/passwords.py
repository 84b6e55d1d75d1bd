"""Password hashing with argon2id (argon2-cffi)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "verify_password"]

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    """An argon2id hash (salted, encoded with its parameters)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; False for a missing or malformed hash."""
    if not password_hash:
        _HASHER.hash(password)  # spend the same time whether or not the user exists
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
