"""Passwords (argon2) and users."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from perezvon.core.models import User
from perezvon.core.phones import normalise

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_user(
    *,
    phone: str,
    password: str | None,
    email: str | None = None,
    first_name: str = "",
    last_name: str = "",
    position: str = "",
    is_staff: bool = False,
) -> User:
    """Create a user; raises ValueError with a clear message on bad input."""
    phone = normalise(phone)
    if await User.exists(phone=phone):
        raise ValueError(f"a user with phone {phone} already exists")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    return await User.create(
        phone=phone,
        email=email,
        first_name=first_name,
        last_name=last_name,
        position=position,
        is_staff=is_staff,
        password_hash=hash_password(password) if password else None,
    )
