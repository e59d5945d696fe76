"""Shared helpers of the admin tests (no tests here): users at each level, signing in, CSRF tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import uuid
from collections.abc import AsyncIterator

import httpx

from perezvon.core.auth import hash_password
from perezvon.core.models import AccessGrant, Call, Connection, Lead, Project, User

PASSWORD = "correct horse battery"
_phones = itertools.count(3000000)


def new_admin_phone() -> str:
    return f"+7925{next(_phones):07d}"


async def make_user(
    *,
    staff: bool = False,
    level: str | None = None,
    project: Project | None = None,
    connection: Connection | None = None,
    **fields,
) -> User:
    email = fields.pop("email", f"u{uuid.uuid4().hex[:8]}@example.com")
    user = await User.create(
        phone=new_admin_phone(),
        email=email,
        first_name=fields.pop("first_name", "Анна"),
        password_hash=hash_password(PASSWORD),
        is_staff=staff,
        **fields,
    )
    if level:
        await AccessGrant.create(user=user, level=level, project=project, connection=connection)
    return user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def login(client, user: User, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the CSRF token of the new session."""
    page = await client.get("/login")
    assert page.status_code == 200
    response = await client.post(
        "/login", data={"phone": user.phone, "password": password, "csrf_token": csrf_of(page.text), "next": "/profile"}
    )
    assert response.status_code == 303, response.text
    profile = await client.get("/profile")
    assert profile.status_code == 200
    return csrf_of(profile.text)


async def make_call(
    connection: Connection,
    *,
    phone: str = "+79161234567",
    name: str = "Иван",
    created_at: dt.datetime | None = None,
    status: str = "successful",
    **lead_fields,
) -> Call:
    when = created_at or dt.datetime.now(dt.UTC)
    lead = await Lead.create(
        connection=connection,
        source=lead_fields.pop("source", "api"),
        phone=phone,
        name=name,
        created_at=when,
        **lead_fields,
    )
    return await Call.create(
        lead=lead,
        connection=connection,
        created_at=when,
        display_status=status,
        state="finished" if status != "pending" else "scheduled",
        is_unique=True,
        is_target=status == "successful",
        duration_seconds=150 if status == "successful" else 0,
    )


@contextlib.asynccontextmanager
async def signed_in_over_http(base: str, user: User, lang: str = "ru") -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client of the admin at ``base``, in ``lang``, signed in as ``user``."""
    async with httpx.AsyncClient(base_url=base, cookies={"pz_lang": lang}) as client:
        page = await client.get("/login")
        response = await client.post(
            "/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/"}
        )
        assert response.status_code == 303, response.text
        yield client
