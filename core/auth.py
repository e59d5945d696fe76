"""Passwords (argon2) and users.

argon2 is slow on purpose (tens of milliseconds of CPU and 64 MiB per hash). In
the web process that time must not be spent on the event loop, which also
takes leads, dials calls and receives mail: :func:`verify_password_off_loop`
and :func:`hash_password_off_loop` run it in a small thread pool of its own
(argon2-cffi releases the GIL while hashing). The pool is bounded, so a burst
of logins waits its turn instead of taking every core and all the memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from perezvon.core.models import User
from perezvon.core.phones import normalise

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8

#: threads hashing at once; each hash holds 64 MiB while it runs
HASH_THREADS = max(1, min(4, os.cpu_count() or 1))
HASH_THREAD_PREFIX = "perezvon-argon2"


@functools.cache
def _hash_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix=HASH_THREAD_PREFIX)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_off_loop(password: str) -> str:
    """:func:`hash_password` in the hashing pool, leaving the event loop free."""
    return await asyncio.get_running_loop().run_in_executor(_hash_pool(), hash_password, password)


async def verify_password_off_loop(stored_hash: str | None, password: str) -> bool:
    """:func:`verify_password` in the hashing pool, leaving the event loop free."""
    return await asyncio.get_running_loop().run_in_executor(_hash_pool(), verify_password, stored_hash, password)


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
        password_hash=await hash_password_off_loop(password) if password else None,
    )
