"""Signing in and out, sessions, CSRF, throttling, activation links, headers, the profile, API keys (docs/admin.md)."""

from __future__ import annotations

import re

from test_admin_helpers import PASSWORD, csrf_of, login, make_user

from perezvon.core.models import ActivationToken, ApiKey, User
from perezvon.web.admin.sessions import PHONE_FAILURES, SESSION_COOKIE


async def test_pages_need_a_login_and_come_back_after_it(perezvon_client, perezvon_app):
    user = await make_user(staff=True)
    response = await perezvon_client.get("/calls?status=lost")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fcalls%3Fstatus%3Dlost"
    page = await perezvon_client.get(response.headers["location"])
    answer = await perezvon_client.post(
        "/login",
        data={
            "phone": user.phone,
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/calls?status=lost",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/calls?status=lost"
    assert (await perezvon_client.get("/calls?status=lost")).status_code == 200


async def test_no_open_redirect_after_login(perezvon_client):
    user = await make_user(staff=True)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/evil", "javascript:x"):
        perezvon_client.cookies.clear()
        page = await perezvon_client.get("/login")
        answer = await perezvon_client.post(
            "/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": target}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/", target


async def test_login_gives_a_new_session_id_and_logout_ends_it(perezvon_client):
    """Session fixation: an id known before login is worthless after it."""
    user = await make_user()
    page = await perezvon_client.get("/login")
    planted = perezvon_client.cookies[SESSION_COOKIE]
    await perezvon_client.post(
        "/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    signed_in = perezvon_client.cookies[SESSION_COOKIE]
    assert signed_in != planted
    perezvon_client.cookies.set(SESSION_COOKIE, planted)
    assert (await perezvon_client.get("/profile")).status_code == 303  # the planted id gives nothing
    perezvon_client.cookies.set(SESSION_COOKIE, signed_in)
    profile = await perezvon_client.get("/profile")
    assert profile.status_code == 200
    out = await perezvon_client.post("/logout", data={"csrf_token": csrf_of(profile.text)})
    assert out.status_code == 303
    perezvon_client.cookies.set(SESSION_COOKIE, signed_in)
    assert (await perezvon_client.get("/profile")).status_code == 303


async def test_session_cookie_is_http_only_and_same_site(perezvon_client):
    page = await perezvon_client.get("/login")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie


async def test_every_form_post_needs_the_csrf_token(perezvon_client):
    user = await make_user()
    csrf = await login(perezvon_client, user)
    for token in ("", "forged"):
        response = await perezvon_client.post(
            "/profile", data={"action": "save", "first_name": "Хакер", "csrf_token": token}
        )
        assert response.status_code == 403
    assert (await User.get(id=user.id)).first_name == "Анна"
    ok = await perezvon_client.post(
        "/profile",
        data={"action": "save", "first_name": "Вера", "last_name": "Ли", "position": "Менеджер", "csrf_token": csrf},
    )
    assert ok.status_code == 303
    saved = await User.get(id=user.id)
    assert (saved.first_name, saved.last_name, saved.position) == ("Вера", "Ли", "Менеджер")


async def test_profile_cannot_change_phone_or_email(perezvon_client):
    user = await make_user()
    csrf = await login(perezvon_client, user)
    await perezvon_client.post(
        "/profile",
        data={
            "action": "save",
            "first_name": "Вера",
            "phone": "+79990000000",
            "email": "x@evil.example",
            "csrf_token": csrf,
        },
    )
    saved = await User.get(id=user.id)
    assert saved.phone == user.phone and saved.email == user.email and saved.first_name == "Вера"


async def test_failed_logins_are_throttled(perezvon_client):
    user = await make_user()
    page = await perezvon_client.get("/login")
    csrf = csrf_of(page.text)
    for _ in range(PHONE_FAILURES):
        wrong = await perezvon_client.post(
            "/login", data={"phone": user.phone, "password": "wrong password", "csrf_token": csrf}
        )
        assert wrong.status_code == 400
    blocked = await perezvon_client.post("/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf})
    assert blocked.status_code == 429
    assert "Слишком много" in blocked.text or "Too many" in blocked.text


async def test_security_headers(perezvon_client):
    response = await perezvon_client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text  # no inline script anywhere: only <script src=...>
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)


async def test_activation_link_sets_the_password_once(perezvon_client, perezvon_app):
    staff = await make_user(staff=True)
    csrf = await login(perezvon_client, staff)
    created = await perezvon_client.post(
        "/staff/users",
        data={
            "csrf_token": csrf,
            "action": "create",
            "phone": "8 (926) 555-12-34",
            "email": "new.user@example.com",
            "first_name": "Олег",
        },
    )
    assert created.status_code == 303
    user = await User.get(phone="+79265551234")
    assert user.password_hash is None and await ActivationToken.exists(user_id=user.id)
    # the mail plugin (no relay in the tests) wrote the message into the outbox: find the link there
    outbox = perezvon_app.settings.data_dir / "outbox"
    messages = [p.read_text(errors="replace") for p in outbox.glob("*.eml")]
    links = [
        m
        for text in messages
        for m in re.findall(r"http://[^\s\"<]+/activate/[\w-]+", text)
        if "new.user@example.com" in text
    ]
    assert links, "no activation e-mail in the outbox"
    link = links[-1].split("/activate/")[1]
    perezvon_client.cookies.clear()
    form = await perezvon_client.get(f"/activate/{link}")
    assert form.status_code == 200 and "+79265551234" in form.text
    short = await perezvon_client.post(
        f"/activate/{link}", data={"csrf_token": csrf_of(form.text), "password": "short", "password2": "short"}
    )
    assert short.status_code == 400
    done = await perezvon_client.post(
        f"/activate/{link}",
        data={"csrf_token": csrf_of(form.text), "password": "a long new password", "password2": "a long new password"},
    )
    assert done.status_code == 303
    assert (await perezvon_client.get("/profile")).status_code == 200  # signed in
    perezvon_client.cookies.clear()
    again = await perezvon_client.get(f"/activate/{link}")
    assert again.status_code == 404  # one-time


async def test_api_keys_are_shown_once_stored_hashed_and_revocable(perezvon_client):
    user = await make_user()
    csrf = await login(perezvon_client, user)
    page = await perezvon_client.post("/profile", data={"csrf_token": csrf, "action": "create_key", "name": "CRM"})
    raw = re.search(r"(pzv_[\w-]{20,})", page.text).group(1)
    key = await ApiKey.get(user_id=user.id)
    assert raw not in key.key_hash and key.prefix == raw[:12]
    listed = await perezvon_client.get("/profile")
    assert raw not in listed.text and key.prefix in listed.text
    assert (await perezvon_client.get("/api/v1/calls", headers={"Authorization": f"Bearer {raw}"})).status_code == 200
    await perezvon_client.post("/profile", data={"csrf_token": csrf, "action": "revoke_key", "key_id": str(key.id)})
    assert (await perezvon_client.get("/api/v1/calls", headers={"Authorization": f"Bearer {raw}"})).status_code == 401
