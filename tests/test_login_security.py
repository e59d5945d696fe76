"""Passwords against a real server (docs/admin.md#security): throttling that holds when tries arrive
together, argon2 off the event loop, sessions ended by a password change and by "sign out everywhere".

The app is served by uvicorn on a loopback port and driven by httpx clients over TCP. Each test
talks from a loopback address of its own (127.0.0.x, all of them reach 127.0.0.1 on Linux), so
the per-address counters of one test never meet another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import httpx
import pytest
import uvicorn
from test_admin_helpers import PASSWORD, csrf_of, make_user

from perezvon.core import auth
from perezvon.core.models import User
from perezvon.web.admin.sessions import IP_FAILURES, PHONE_FAILURES, THROTTLE_SECONDS, LoginThrottle
from perezvon.web.app import create_app


@pytest.fixture(scope="module")
async def server_url(perezvon_app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(perezvon_app, manage_lifecycle=False), log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(Exception):
        await task


@pytest.fixture(autouse=True)
async def fresh_throttle_counters(perezvon_app):
    """The counters live 15 minutes: a test's tries must not count against the next test's."""
    yield
    keys = [key async for key in perezvon_app.redis.scan_iter(match="pz:admin:login-fail:*")]
    if keys:
        await perezvon_app.redis.delete(*keys)


class CountingHasher:
    """The real argon2 hasher, noting the thread of every verification it makes."""

    def __init__(self, real) -> None:
        self.real = real
        self.threads: list[str] = []

    def verify(self, stored_hash, password):
        self.threads.append(threading.current_thread().name)  # list.append is atomic: threads may call this at once
        return self.real.verify(stored_hash, password)

    def hash(self, password):
        return self.real.hash(password)


@pytest.fixture
def verifications(monkeypatch):
    """Every argon2 verification the server makes, with the thread it ran in (the real hasher does the work)."""
    counting = CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    return counting.threads


def client_from(server_url: str, address: str) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``address`` (a loopback address of the test's own)."""
    transport = httpx.AsyncHTTPTransport(local_address=address, limits=httpx.Limits(max_connections=100))
    return httpx.AsyncClient(base_url=server_url, transport=transport, timeout=120)


async def login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    assert page.status_code == 200
    return csrf_of(page.text)


async def sign_in(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> str:
    csrf = await login_form(client)
    answer = await client.post("/login", data={"phone": user.phone, "password": password, "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    profile = await client.get("/profile")
    assert profile.status_code == 200
    return csrf_of(profile.text)


async def test_forty_wrong_passwords_at_once_are_not_all_checked(server_url, verifications):
    user = await make_user()
    async with client_from(server_url, "127.0.0.2") as client:
        csrf = await login_form(client)

        async def wrong_try(n: int) -> httpx.Response:
            return await client.post(
                "/login", data={"phone": user.phone, "password": f"wrong password {n}", "csrf_token": csrf}
            )

        answers = await asyncio.gather(*(wrong_try(n) for n in range(40)))
        statuses = [answer.status_code for answer in answers]
        assert len(verifications) <= PHONE_FAILURES  # counted before checking: the rest never reached argon2
        assert statuses.count(400) == len(verifications) and statuses.count(429) == 40 - len(verifications)
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert "Слишком много неудачных попыток" in refused.text  # Russian first
        checked = len(verifications)
        right = await client.post("/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf})
        assert right.status_code == 429  # the right password waits too: the window is not over
        assert len(verifications) == checked
        english = await client.post(
            "/login",
            data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf},
            headers={"Accept-Language": "en"},
        )
        assert english.status_code == 429 and "Too many failed attempts. Try again in 15 min." in english.text


async def test_one_address_trying_many_phones_at_once_is_limited(perezvon_app, server_url, verifications):
    users = [await make_user() for _ in range(3)]
    phones = [user.phone for user in users] + [f"+7926{n:07d}" for n in range(40)]  # most of them unknown
    left = 4
    # the address has already used all but ``left`` of its tries (each costs an argon2 check: this keeps the test short)
    _, address_key = LoginThrottle._keys("", "127.0.0.3")
    await perezvon_app.redis.set(address_key, IP_FAILURES - left, ex=THROTTLE_SECONDS)
    async with client_from(server_url, "127.0.0.3") as client:
        csrf = await login_form(client)
        answers = await asyncio.gather(
            *(client.post("/login", data={"phone": phone, "password": "guess", "csrf_token": csrf}) for phone in phones)
        )
        assert len(verifications) <= left
        assert [a.status_code for a in answers].count(429) == len(phones) - len(verifications)
        refused = await client.post("/login", data={"phone": users[0].phone, "password": PASSWORD, "csrf_token": csrf})
        assert refused.status_code == 429
    async with client_from(server_url, "127.0.0.4") as elsewhere:  # another address is not held back
        await sign_in(elsewhere, users[0])


async def test_a_right_password_gives_its_try_back(server_url, verifications):
    """Only wrong passwords use the allowance up: signing in again and again is never throttled."""
    user = await make_user()
    async with client_from(server_url, "127.0.0.5") as client:
        for _ in range(PHONE_FAILURES + 2):
            await sign_in(client, user)
            client.cookies.clear()
    assert len(verifications) == PHONE_FAILURES + 2


async def test_wrong_current_passwords_on_the_profile_are_throttled(server_url, verifications):
    user = await make_user()
    async with client_from(server_url, "127.0.0.6") as client:
        csrf = await sign_in(client, user)
        before = len(verifications)

        async def change(current: str) -> httpx.Response:
            return await client.post(
                "/profile",
                data={"csrf_token": csrf, "action": "password", "current": current, "password": "a brand new password"},
            )

        answers = await asyncio.gather(*(change(f"guess {n}") for n in range(20)))
        checked = len(verifications) - before
        assert checked <= PHONE_FAILURES
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(400) == checked and statuses.count(429) == 20 - checked
        throttled = next(answer for answer in answers if answer.status_code == 429)
        assert "Слишком много неверных паролей" in throttled.text  # a form error next to the field
        right = await change(PASSWORD)
        assert right.status_code == 429
        assert (await User.get(id=user.id)).password_hash == user.password_hash  # not changed
        assert (await client.get("/profile")).status_code == 200  # still signed in


async def test_password_checks_run_in_the_hashing_threads_not_on_the_event_loop(
    perezvon_app, server_url, verifications
):
    """20 logins at once, and /healthz meanwhile: argon2 runs in the bounded pool, so the loop answers.

    (The latency figures are in bench/login_loop.py and BENCHMARKS.md; here, where it ran, and that
    /healthz was answered while logins were still being checked.)
    """
    stored = auth.hash_password(PASSWORD)
    users = [await make_user() for _ in range(20)]
    await User.filter(id__in=[u.id for u in users]).update(password_hash=stored)
    done: list[str] = []
    browsers = [client_from(server_url, "127.0.0.7") for _ in users]  # one browser per person
    async with contextlib.AsyncExitStack() as stack, client_from(server_url, "127.0.0.8") as probe:
        for browser in browsers:
            await stack.enter_async_context(browser)
        forms = [await login_form(browser) for browser in browsers]

        async def one_login(browser: httpx.AsyncClient, user: User, csrf: str) -> int:
            answer = await browser.post("/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf})
            done.append("login")
            return answer.status_code

        logins = [
            asyncio.create_task(one_login(browser, user, csrf))
            for browser, user, csrf in zip(browsers, users, forms, strict=True)
        ]
        while not verifications:  # the checking has begun
            await asyncio.sleep(0.001)
        health = await probe.get("/healthz")
        done.append("healthz")
        statuses = await asyncio.gather(*logins)
    assert health.status_code in (200, 503) and "database" in health.json()
    assert statuses == [303] * 20
    assert len(verifications) == 20
    assert all(name.startswith(auth.HASH_THREAD_PREFIX) for name in verifications), set(verifications)
    assert done.index("healthz") < len(done) - 1  # answered before the last login was


async def test_changing_the_password_signs_out_the_other_sessions(server_url):
    user = await make_user()
    async with client_from(server_url, "127.0.0.9") as laptop, client_from(server_url, "127.0.0.9") as phone:
        csrf = await sign_in(laptop, user)
        await sign_in(phone, user)
        changed = await laptop.post(
            "/profile",
            data={"csrf_token": csrf, "action": "password", "current": PASSWORD, "password": "a brand new password"},
        )
        assert changed.status_code == 303
        page = await laptop.get("/profile")
        assert page.status_code == 200  # the browser that changed it stays signed in
        assert "На всех других устройствах выполнен выход" in page.text
        gone = await phone.get("/profile")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
        assert (await phone.post("/profile", data={"action": "save", "csrf_token": csrf})).status_code in (401, 403)
    async with client_from(server_url, "127.0.0.10") as again:
        csrf = await login_form(again)
        old = await again.post("/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf})
        assert old.status_code == 400
        await sign_in(again, user, "a brand new password")


async def test_sign_out_everywhere_ends_every_session(server_url, perezvon_app):
    user = await make_user()
    other = await make_user()
    async with (
        client_from(server_url, "127.0.0.11") as laptop,
        client_from(server_url, "127.0.0.11") as phone,
        client_from(server_url, "127.0.0.11") as someone_else,
    ):
        await sign_in(laptop, user)
        csrf = await sign_in(phone, user)
        await sign_in(someone_else, other)
        page = await phone.get("/profile")
        assert "Выйти на всех устройствах" in page.text
        out = await phone.post("/profile", data={"csrf_token": csrf, "action": "sign_out_everywhere"})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        for client in (laptop, phone):
            answer = await client.get("/profile")
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        assert (await someone_else.get("/profile")).status_code == 200  # only this user's sessions end
    keys = [key async for key in perezvon_app.redis.scan_iter(match=f"pz:admin:user-sessions:{user.id}")]
    assert keys == []


async def test_a_password_set_through_an_activation_link_signs_out_the_old_sessions(server_url):
    """A link staff send to reset a forgotten (or stolen) password ends the sessions made with the old one."""
    import datetime as dt
    import secrets

    from perezvon.core.models import ActivationToken
    from perezvon.web.admin.views.auth import _token_hash

    user = await make_user()
    raw = secrets.token_urlsafe(32)
    await ActivationToken.create(
        user=user, token_hash=_token_hash(raw), expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    )
    async with client_from(server_url, "127.0.0.12") as old, client_from(server_url, "127.0.0.12") as new:
        await sign_in(old, user)
        form = await new.get(f"/activate/{raw}")
        done = await new.post(
            f"/activate/{raw}",
            data={"csrf_token": csrf_of(form.text), "password": "a reset password", "password2": "a reset password"},
        )
        assert done.status_code == 303
        assert (await new.get("/profile")).status_code == 200
        assert (await old.get("/profile")).status_code == 303
