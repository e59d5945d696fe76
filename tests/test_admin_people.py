"""People management over real HTTP (docs/admin.md#people): staff edit, deactivate and reset users; users
recover a forgotten password by a one-time e-mailed link; the profile lists the user's access; a
connection's "full" users manage that connection's grants and no other.

The app runs under uvicorn on a loopback port; e-mails go through the mail plugin, which (no relay
in the tests) writes every message into the outbox, where these tests read them as a mailbox would.
Each test talks from loopback addresses of its own (127.0.4.x), so per-address counters never meet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
import time
import uuid
from email.message import EmailMessage

import httpx
import pytest
from live_helpers import live_server
from test_admin_helpers import PASSWORD, csrf_of, make_user

from perezvon.core.access import create_api_key
from perezvon.core.models import AccessGrant, ActivationToken, Connection, Project, User
from perezvon.web.admin.sessions import RECOVERY_PER_IP, RECOVERY_PER_PHONE
from perezvon.web.app import create_app

NEW_PASSWORD = "a brand new password"
LINK = re.compile(r"https?://[^\s\"<>]+/activate/[\w-]+")


@pytest.fixture(scope="module")
async def base(perezvon_app):
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as url:
        yield url


@pytest.fixture(autouse=True)
async def fresh_counters(perezvon_app):
    yield
    for pattern in ("pz:admin:login-fail:*", "pz:admin:recovery:*"):
        keys = [key async for key in perezvon_app.redis.scan_iter(match=pattern)]
        if keys:
            await perezvon_app.redis.delete(*keys)


def client(base: str, address: str = "127.0.4.1", lang: str = "en") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=60, cookies={"pz_lang": lang})


async def sign_in(http: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> httpx.Response:
    page = await http.get("/login")
    return await http.post("/login", data={"phone": phone, "password": password, "csrf_token": csrf_of(page.text)})


async def signed_in(http: httpx.AsyncClient, user: User) -> str:
    answer = await sign_in(http, user.phone)
    assert answer.status_code == 303, answer.text
    return csrf_of((await http.get("/profile")).text)


def mails_to(perezvon_app, address: str) -> list[EmailMessage]:
    outbox = perezvon_app.settings.data_dir / "outbox"
    found = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address in str(message["To"]):
            found.append(message)
    return found  # type: ignore[return-value]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return body.get_content()


async def wait_for_mail(perezvon_app, address: str, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while True:
        found = mails_to(perezvon_app, address)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def link_path(message: EmailMessage) -> str:
    links = LINK.findall(text_of(message))
    assert links, "no link in the e-mail"
    return "/activate/" + links[-1].split("/activate/")[1]


async def set_password(http: httpx.AsyncClient, path: str, password: str = NEW_PASSWORD) -> httpx.Response:
    form = await http.get(path)
    assert form.status_code == 200, form.text
    return await http.post(path, data={"csrf_token": csrf_of(form.text), "password": password, "password2": password})


def unique_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


# --- staff: edit, deactivate, reset ---------------------------------------------------------------


async def test_staff_edit_a_users_phone_email_name_and_position(base):
    staff = await make_user(staff=True)
    person = await make_user(position="Operator")
    other = await make_user()
    async with client(base) as http:
        csrf = await signed_in(http, staff)
        page = await http.get(f"/staff/users?edit={person.id}")
        assert page.status_code == 200 and 'value="Operator"' in page.text
        new_email = unique_email()
        saved = await http.post(
            "/staff/users",
            data={
                "csrf_token": csrf,
                "action": "edit",
                "id": str(person.id),
                "phone": "8 (926) 777-01-02",
                "email": new_email,
                "first_name": "Пётр",
                "last_name": "Иванов",
                "position": "Head of sales",
            },
        )
        assert saved.status_code == 303
        person = await User.get(id=person.id)
        assert (person.phone, person.email, person.first_name, person.last_name, person.position) == (
            "+79267770102",
            new_email,
            "Пётр",
            "Иванов",
            "Head of sales",
        )
        # another user's phone: refused, with the reason next to the field, nothing saved
        clash = await http.post(
            "/staff/users",
            data={"csrf_token": csrf, "action": "edit", "id": str(person.id), "phone": other.phone, "email": new_email},
        )
        assert clash.status_code == 400 and "Another user already has this phone." in clash.text
        bad = await http.post(
            "/staff/users",
            data={"csrf_token": csrf, "action": "edit", "id": str(person.id), "phone": "12", "email": "not-mail"},
        )
        assert bad.status_code == 400 and 'class="error"' in bad.text
        assert (await User.get(id=person.id)).phone == "+79267770102"
    async with client(base, lang="ru") as http:
        csrf = await signed_in(http, staff)
        clash = await http.post(
            "/staff/users",
            data={"csrf_token": csrf, "action": "edit", "id": str(person.id), "phone": other.phone, "email": new_email},
        )
        assert clash.status_code == 400 and "Этот телефон уже есть у другого пользователя." in clash.text
    # the new phone is the login now
    async with client(base) as http:
        assert (await sign_in(http, "+79267770102")).status_code == 303


async def test_a_deactivated_user_is_signed_out_everywhere_and_cannot_sign_in_or_use_api_keys(base):
    staff = await make_user(staff=True)
    person = await make_user()
    _, key = await create_api_key(person, "CRM")
    bearer = {"Authorization": f"Bearer {key}"}
    async with client(base, "127.0.4.2") as theirs, client(base, "127.0.4.3") as mine:
        await signed_in(theirs, person)
        assert (await theirs.get("/api/v1/calls", headers=bearer)).status_code == 200
        csrf = await signed_in(mine, staff)
        # staff cannot lock themselves out
        self_off = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "deactivate", "id": staff.id})
        assert self_off.status_code == 303 and (await User.get(id=staff.id)).is_active
        off = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "deactivate", "id": str(person.id)})
        assert off.status_code == 303
        listing = await mine.get("/staff/users")
        assert "deactivated" in listing.text and "Reactivate" in listing.text
        assert not (await User.get(id=person.id)).is_active
        # the open session is over at once, the API key too, and the password no longer signs in
        assert (await theirs.get("/profile")).status_code == 303
        assert theirs.cookies.get("pz_session") is None or (await theirs.get("/calls")).status_code == 303
        assert (await theirs.get("/api/v1/calls", headers=bearer)).status_code == 401
        refused = await sign_in(theirs, person.phone)
        assert refused.status_code == 400 and "Wrong phone or password." in refused.text
        # a reset link cannot be made for a deactivated user, and no earlier link brings them back
        no_link = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "reset", "id": str(person.id)})
        assert no_link.status_code == 303 and not await ActivationToken.exists(user_id=person.id, used_at=None)
        on = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "reactivate", "id": str(person.id)})
        assert on.status_code == 303
        assert (await sign_in(theirs, person.phone)).status_code == 303
        assert (await theirs.get("/api/v1/calls", headers=bearer)).status_code == 200


async def test_staff_password_reset_link_is_shown_and_emailed_and_ends_the_old_sessions(base, perezvon_app):
    staff = await make_user(staff=True)
    address = unique_email()
    person = await make_user(email=address)
    async with client(base, "127.0.4.4") as theirs, client(base, "127.0.4.5") as mine:
        await signed_in(theirs, person)
        csrf = await signed_in(mine, staff)
        answer = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "reset", "id": str(person.id)})
        assert answer.status_code == 200
        assert f"The password reset link is sent to {address}" in answer.text
        shown = LINK.findall(answer.text)
        assert shown, "staff see the link to pass on"
        mails = mails_to(perezvon_app, address)
        assert len(mails) == 1 and mails[0]["Subject"] == "Reset your Perezvon password"
        path = link_path(mails[0])
        assert shown[0].endswith(path)
        assert "Someone asked to reset the password" in text_of(mails[0])
        async with client(base, "127.0.4.6") as fresh:
            assert (await set_password(fresh, path)).status_code == 303
            assert (await fresh.get("/profile")).status_code == 200
            assert (await fresh.get(path)).status_code == 404  # one-time
        # the session signed in with the old password is over, the old password is worthless
        assert (await theirs.get("/profile")).status_code == 303
        assert (await sign_in(theirs, person.phone)).status_code == 400
        assert (await sign_in(theirs, person.phone, NEW_PASSWORD)).status_code == 303


async def test_staff_reset_for_a_user_without_email_shows_the_link_only(base):
    staff = await make_user(staff=True)
    person = await make_user(email=None)
    async with client(base, "127.0.4.7", lang="ru") as mine:
        csrf = await signed_in(mine, staff)
        answer = await mine.post("/staff/users", data={"csrf_token": csrf, "action": "reset", "id": str(person.id)})
        assert answer.status_code == 200
        assert "Письмо отправить не удалось" in answer.text and LINK.search(answer.text)


# --- "forgot password?" -----------------------------------------------------------------------


async def ask_for_link(http: httpx.AsyncClient, phone: str) -> httpx.Response:
    page = await http.get("/login/forgot")
    assert page.status_code == 200
    return await http.post("/login/forgot", data={"csrf_token": csrf_of(page.text), "phone": phone})


async def test_forgot_password_emails_a_one_time_link_and_the_answer_does_not_tell_who_exists(base, perezvon_app):
    address = unique_email()
    person = await make_user(email=address)
    async with client(base, "127.0.4.10") as theirs, client(base, "127.0.4.11") as anon:
        await signed_in(theirs, person)
        login_page = await anon.get("/login")
        assert 'href="/login/forgot"' in login_page.text and "Forgot password?" in login_page.text
        known = await ask_for_link(anon, person.phone)
        unknown = await ask_for_link(anon, "+79990001122")
        assert known.status_code == unknown.status_code == 200

        def visible(html: str) -> str:
            return re.sub(r'name="csrf_token" value="[^"]+"|value="[^"]*"', "", html)

        assert visible(known.text) == visible(unknown.text)
        assert "a link to set a new password is on its way" in known.text
        mails = await wait_for_mail(perezvon_app, address)
        assert len(mails) == 1 and mails[0]["Subject"] == "Reset your Perezvon password"
        path = link_path(mails[0])
        token = await ActivationToken.get(user_id=person.id, used_at=None)
        assert dt.timedelta(minutes=55) < token.expires_at - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
        assert (await set_password(anon, path)).status_code == 303
        assert (await anon.get("/profile")).status_code == 200
        assert (await anon.get(path)).status_code == 404  # single use
        assert (await theirs.get("/profile")).status_code == 303  # the other session is over
    async with client(base, "127.0.4.12") as again:
        assert (await sign_in(again, person.phone, NEW_PASSWORD)).status_code == 303


async def test_a_recovery_link_expires_and_a_newer_one_replaces_it(base, perezvon_app):
    address = unique_email()
    person = await make_user(email=address)
    async with client(base, "127.0.4.13") as anon:
        await ask_for_link(anon, person.phone)
        first = link_path((await wait_for_mail(perezvon_app, address))[0])
        await ask_for_link(anon, person.phone)
        second = link_path((await wait_for_mail(perezvon_app, address, 2))[1])
        assert first != second
        assert (await anon.get(first)).status_code == 404  # only the newest link counts
        await ActivationToken.filter(user_id=person.id, used_at=None).update(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
        expired = await anon.get(second)
        assert expired.status_code == 404 and "Forgot password?" in expired.text


async def test_no_link_for_a_deactivated_user_or_one_without_email(base, perezvon_app):
    address = unique_email()
    off = await make_user(email=address, is_active=False)
    no_mail = await make_user(email=None)
    async with client(base, "127.0.4.14") as anon:
        assert (await ask_for_link(anon, off.phone)).status_code == 200
        assert (await ask_for_link(anon, no_mail.phone)).status_code == 200
        await asyncio.sleep(1)
        assert mails_to(perezvon_app, address) == []
        assert not await ActivationToken.exists(user_id__in=[off.id, no_mail.id])
        bad = await ask_for_link(anon, "not a phone")
        assert bad.status_code == 400 and "Enter the mobile phone you sign in with" in bad.text


async def test_recovery_is_throttled_per_phone_and_per_address(base, perezvon_app):
    address = unique_email()
    person = await make_user(email=address)
    async with client(base, "127.0.4.20") as anon:
        for _ in range(RECOVERY_PER_PHONE):
            assert (await ask_for_link(anon, person.phone)).status_code == 200
    async with client(base, "127.0.4.21", lang="ru") as elsewhere:
        # the phone's allowance is used up, from whatever address
        stopped = await ask_for_link(elsewhere, person.phone)
        assert stopped.status_code == 429 and "Слишком много запросов ссылки" in stopped.text
    assert len(await wait_for_mail(perezvon_app, address, RECOVERY_PER_PHONE)) == RECOVERY_PER_PHONE
    await asyncio.sleep(0.5)
    assert len(mails_to(perezvon_app, address)) == RECOVERY_PER_PHONE
    # one address walking through many phones
    async with client(base, "127.0.4.22") as walker:
        for n in range(RECOVERY_PER_IP):
            assert (await ask_for_link(walker, f"+7999{n:07d}")).status_code == 200
        stopped = await ask_for_link(walker, "+79998887766")
        assert stopped.status_code == 429 and "Too many requests for a link. Try again in" in stopped.text


# --- the profile's access list ----------------------------------------------------------------


async def test_the_profile_lists_projects_and_connections_with_their_level(base, perezvon_site):
    project = await Project.get(id=perezvon_site.project_id)
    other_project = await Project.create(name="Склад")
    person = await make_user(level="view", connection=perezvon_site)
    await AccessGrant.create(user=person, project=other_project, level="full")
    async with client(base, "127.0.4.30", lang="ru") as http:
        await signed_in(http, person)
        section = (await http.get("/profile")).text.split('id="access"')[1].split("</section>")[0]
        assert "Склад" in section and "Полный" in section
        assert perezvon_site.domain in section and project.name in section and "Просмотр" in section
    async with client(base, "127.0.4.31", lang="en") as http:
        await signed_in(http, person)
        section = (await http.get("/profile")).text.split('id="access"')[1].split("</section>")[0]
        assert "Full" in section and "View" in section and "sees the calls and the settings" in section
    nobody = await make_user()
    async with client(base, "127.0.4.32", lang="en") as http:
        await signed_in(http, nobody)
        assert "You have no access to any project or connection yet." in (await http.get("/profile")).text


# --- a connection's full users manage its grants ----------------------------------------------


async def test_a_connection_full_user_manages_that_connections_users(base, perezvon_app, perezvon_site):
    manager = await make_user(level="full", connection=perezvon_site)
    colleague = await make_user()
    async with client(base, "127.0.4.40") as http:
        csrf = await signed_in(http, manager)
        connection_page = await http.get(f"/connections/{perezvon_site.id}")
        assert f'href="/connections/{perezvon_site.id}/users"' in connection_page.text
        url = f"/connections/{perezvon_site.id}/users"
        added = await http.post(
            url, data={"csrf_token": csrf, "action": "save", "phone": colleague.phone, "level": "edit"}
        )
        assert added.status_code == 303
        grant = await AccessGrant.get(user_id=colleague.id)
        assert (grant.connection_id, grant.project_id, grant.level) == (perezvon_site.id, None, "edit")
        page = await http.get(url)
        assert colleague.phone in page.text and manager.phone in page.text and "your access" in page.text
        changed = await http.post(
            url, data={"csrf_token": csrf, "action": "level", "id": str(grant.id), "level": "view"}
        )
        assert changed.status_code == 303 and (await AccessGrant.get(id=grant.id)).level == "view"
        # a new person: invited by e-mail with an activation link, and given the access at once
        address = unique_email()
        invited = await http.post(
            url,
            data={
                "csrf_token": csrf,
                "action": "save",
                "phone": "+79267770909",
                "level": "view",
                "email": address,
                "first_name": "Ольга",
            },
        )
        assert invited.status_code == 303
        newcomer = await User.get(phone="+79267770909")
        assert newcomer.password_hash is None and not newcomer.is_staff and newcomer.first_name == "Ольга"
        assert await AccessGrant.exists(user_id=newcomer.id, connection_id=perezvon_site.id, level="view")
        mails = mails_to(perezvon_app, address)
        assert len(mails) == 1 and mails[0]["Subject"] == "Activate your Perezvon account"
        # an unknown phone without an e-mail: the form says what is missing
        missing = await http.post(
            url, data={"csrf_token": csrf, "action": "save", "phone": "+79267770910", "level": "view"}
        )
        assert missing.status_code == 400 and "Give their e-mail to invite them." in missing.text
        removed = await http.post(url, data={"csrf_token": csrf, "action": "delete", "id": str(grant.id)})
        assert removed.status_code == 303 and not await AccessGrant.exists(id=grant.id)


async def test_a_connection_full_user_cannot_touch_other_grants_or_their_own(base, perezvon_site):
    project = await Project.get(id=perezvon_site.project_id)
    sibling = await Connection.create(project=project, domain=f"sibling-{uuid.uuid4().hex[:6]}.example")
    manager = await make_user(level="full", connection=perezvon_site)
    own = await AccessGrant.get(user_id=manager.id)
    on_sibling = await AccessGrant.create(user=await make_user(), connection=sibling, level="view")
    on_project = await AccessGrant.create(user=await make_user(), project=project, level="edit")
    url = f"/connections/{perezvon_site.id}/users"
    async with client(base, "127.0.4.41") as http:
        csrf = await signed_in(http, manager)
        for grant in (on_sibling, on_project):
            for data in ({"action": "delete"}, {"action": "level", "level": "full"}):
                answer = await http.post(url, data={"csrf_token": csrf, "id": str(grant.id), **data})
                assert answer.status_code == 404, answer.text
        assert (await AccessGrant.get(id=on_sibling.id)).level == "view"
        assert (await AccessGrant.get(id=on_project.id)).level == "edit"
        # the sibling connection's page of users is not theirs even to see
        assert (await http.get(f"/connections/{sibling.id}/users")).status_code == 404
        grantee = await make_user()
        await http.post(
            f"/connections/{sibling.id}/users",
            data={"csrf_token": csrf, "action": "save", "phone": grantee.phone, "level": "full"},
        )
        assert not await AccessGrant.exists(user_id=grantee.id)
        # their own grant: neither lowered nor removed by a slip
        for data in ({"action": "delete"}, {"action": "level", "level": "view"}):
            answer = await http.post(url, data={"csrf_token": csrf, "id": str(own.id), **data})
            assert answer.status_code == 403 and "You cannot change or remove your own access." in answer.text
        again = await http.post(
            url, data={"csrf_token": csrf, "action": "save", "phone": manager.phone, "level": "view"}
        )
        assert again.status_code == 400
        assert (await AccessGrant.get(id=own.id)).level == "full"
        # a level that does not exist
        bad = await http.post(url, data={"csrf_token": csrf, "action": "save", "phone": grantee.phone, "level": "root"})
        assert bad.status_code == 400 and "Choose a level." in bad.text
    editor = await make_user(level="edit", connection=perezvon_site)
    async with client(base, "127.0.4.42") as http:
        csrf = await signed_in(http, editor)
        assert (await http.get(url)).status_code == 403
        answer = await http.post(url, data={"csrf_token": csrf, "action": "delete", "id": str(on_sibling.id)})
        assert answer.status_code == 403


async def test_a_project_full_user_invites_a_new_person_too(base, perezvon_app, perezvon_site):
    project = await Project.get(id=perezvon_site.project_id)
    manager = await make_user(level="full", project=project)
    address = unique_email()
    phone = f"+7926{uuid.uuid4().int % 10**7:07d}"
    async with client(base, "127.0.4.50", lang="ru") as http:
        csrf = await signed_in(http, manager)
        url = f"/projects/{project.id}/grants"
        missing = await http.post(url, data={"csrf_token": csrf, "action": "save", "phone": phone, "level": "edit"})
        assert missing.status_code == 303 and not await User.exists(phone=phone)
        page = await http.get(f"/projects/{project.id}")
        assert "Укажите его почту, чтобы пригласить." in page.text
        invited = await http.post(
            url,
            data={
                "csrf_token": csrf_of(page.text),
                "action": "save",
                "phone": phone,
                "level": "edit",
                "email": address,
            },
        )
        assert invited.status_code == 303
        newcomer = await User.get(phone=phone)
        assert await AccessGrant.exists(user_id=newcomer.id, project_id=project.id, connection_id=None, level="edit")
        mails = mails_to(perezvon_app, address)
        assert len(mails) == 1 and LINK.search(text_of(mails[0]))


async def test_forgot_password_in_a_real_browser(base, perezvon_app, perezvon_site, page):
    address = unique_email()
    person = await make_user(email=address, level="edit", connection=perezvon_site)
    await page.context.add_cookies([{"name": "pz_lang", "value": "ru", "url": base}])
    await page.goto(f"{base}/login")
    await page.click("text=Забыли пароль?")
    await page.wait_for_url(f"{base}/login/forgot")
    await page.fill("#phone", person.phone)
    await page.click("button[type=submit]")
    status = await page.text_content("[role=status]")
    assert status is not None and "ссылка для нового пароля уже отправлена" in status
    mails = await wait_for_mail(perezvon_app, address)
    assert len(mails) == 1 and mails[0]["Subject"] == "Сброс пароля в Perezvon"
    await page.goto(base + link_path(mails[0]))
    await page.fill("#password", NEW_PASSWORD)
    await page.fill("#password2", NEW_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(lambda url: "/activate/" not in url)
    await page.goto(f"{base}/profile")
    access = await page.text_content("#access")
    assert access is not None and perezvon_site.domain in access and "Редактирование" in access


async def test_nobody_gives_the_contacts_right_without_having_it(base, perezvon_site):
    """As with levels: a manager who sees clients masked cannot let others see them in full."""
    project = await Project.get(id=perezvon_site.project_id)
    url = f"/connections/{perezvon_site.id}/users"
    masked_manager = await make_user(level="full", connection=perezvon_site)
    await AccessGrant.filter(user_id=masked_manager.id).update(may_see_contacts=False)
    seeing_manager = await make_user(level="full", connection=perezvon_site)
    grantee, other = await make_user(), await make_user()
    async with client(base, "127.0.4.60") as http:
        csrf = await signed_in(http, masked_manager)
        page = await http.get(url)
        assert "Sees clients' phones and e-mails" in page.text
        refused = await http.post(
            url,
            data={
                "csrf_token": csrf,
                "action": "save",
                "phone": grantee.phone,
                "level": "view",
                "may_see_contacts": "1",
            },
        )
        assert refused.status_code == 400 and "you do not see them" in refused.text
        assert not await AccessGrant.exists(user_id=grantee.id)
        plain = await http.post(
            url, data={"csrf_token": csrf, "action": "save", "phone": grantee.phone, "level": "view"}
        )
        assert plain.status_code == 303
        assert (await AccessGrant.get(user_id=grantee.id)).may_see_contacts is False
        # on the project's page too (a project-full user masked on the project)
        project_manager = await make_user(level="full", project=project)
        await AccessGrant.filter(user_id=project_manager.id).update(may_see_contacts=False)
    async with client(base, "127.0.4.61") as http:
        csrf = await signed_in(http, project_manager)
        await http.post(
            f"/projects/{project.id}/grants",
            data={"csrf_token": csrf, "action": "save", "phone": other.phone, "level": "view", "may_see_contacts": "1"},
        )
        assert not await AccessGrant.exists(user_id=other.id)
    async with client(base, "127.0.4.62") as http:
        csrf = await signed_in(http, seeing_manager)
        grant = await AccessGrant.get(user_id=grantee.id)
        given = await http.post(
            url,
            data={"csrf_token": csrf, "action": "level", "id": str(grant.id), "level": "edit", "may_see_contacts": "1"},
        )
        assert given.status_code == 303
        assert (await AccessGrant.get(id=grant.id)).may_see_contacts is True
    async with client(base, "127.0.4.63") as http:
        csrf = await signed_in(http, masked_manager)
        # a right the grant already has may stay when the masked manager changes only the level
        kept = await http.post(
            url,
            data={"csrf_token": csrf, "action": "level", "id": str(grant.id), "level": "view", "may_see_contacts": "1"},
        )
        assert kept.status_code == 303
        assert (await AccessGrant.get(id=grant.id)).level == "view"
