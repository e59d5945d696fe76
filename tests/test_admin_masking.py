"""Masking clients' contacts per grant, on every exit; notes on a call (docs/admin.md#who-may-do-what).

Every exit a masked user reads -- the Calls table, the call's page, an app's panel, the .xlsx export,
the read API and the e-mails they receive -- is checked to hold neither the client's full phone nor
their e-mail, and to hold the masked forms; an unmasked user reads them in full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import uuid
from email import message_from_bytes, policy

import openpyxl
import pytest
from test_admin_helpers import csrf_of, login, make_call, make_user

from perezvon.core import jobs
from perezvon.core.access import Access, addresses_without_contacts, create_api_key
from perezvon.core.masking import mask_email, mask_phone, mask_text, mask_value
from perezvon.core.models import AccessGrant, CallNote, Connection, NotificationRecipient, Project, User

PHONE = "+79161234533"
PHONE_MASKED = "+7 916 ***-**-33"
EMAIL = "ivan.petrov@example.com"
EMAIL_MASKED = "i***@example.com"
#: the ways the full number could show: E.164, its digits, national and international writing
FULL_FORMS = ("79161234533", "9161234533", "916 123-45-33", "123-45-33", "916) 123", EMAIL)


def assert_masked(text: str) -> None:
    for form in FULL_FORMS:
        assert form not in text, f"{form!r} leaked"
    assert PHONE_MASKED in text


def assert_full(text: str) -> None:
    assert PHONE in text or "916 123-45-33" in text


async def _site() -> Connection:
    project = await Project.create(name="Masking project")
    return await Connection.create(project=project, domain=f"mask-{uuid.uuid4().hex[:8]}.example", name="Маска")


async def _client_call(site: Connection, **fields):
    return await make_call(
        site,
        phone=PHONE,
        name="Иван",
        utm_source="yandex",
        extra={"Телефон": "8 (916) 123-45-33", "E-mail": EMAIL, "Сообщение": f"Перезвоните на {PHONE}"},
        **fields,
    )


async def _masked_user(site: Connection, level: str = "view", **fields) -> User:
    user = await make_user(level=level, connection=site, **fields)
    await AccessGrant.filter(user_id=user.id).update(may_see_contacts=False)
    return user


# --- the masks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+79161234533", "+7 916 ***-**-33"),
        ("+442079460958", "+44 20 **** **58"),
        ("+12025550143", "+1 202-***-**43"),
        ("+8613812345678", "+86 138 **** **78"),
        ("+380441234567", "+380 44 *** **67"),
    ],
)
def test_a_phone_keeps_its_country_code_first_group_and_last_two_digits(phone, masked):
    assert mask_phone(phone) == masked


def test_emails_and_free_text_are_masked():
    assert mask_email("ivan.petrov@example.com") == "i***@example.com"
    text = mask_text("Позвоните 8 (916) 123-45-33 или ivan@mail.ru; заказ от 04.12.2026 18:30")
    assert text == "Позвоните +7 916 ***-**-33 или i***@mail.ru; заказ от 04.12.2026 18:30"
    assert mask_value({"a": [79161234533, "x"], "n": 5}) == {"a": [PHONE_MASKED, "x"], "n": 5}


# --- the rule ---------------------------------------------------------------------------------------


async def test_the_more_generous_grant_wins_and_staff_always_see(perezvon_app):
    site = await _site()
    project = await Project.get(id=site.project_id)
    both_hidden = await make_user(level="edit", project=project)
    await AccessGrant.create(user=both_hidden, connection=site, level="view", may_see_contacts=False)
    await AccessGrant.filter(user_id=both_hidden.id, project_id=project.id).update(may_see_contacts=False)
    connection_allows = await make_user(level="full", project=project)
    await AccessGrant.filter(user_id=connection_allows.id).update(may_see_contacts=False)
    await AccessGrant.create(user=connection_allows, connection=site, level="view", may_see_contacts=True)
    project_allows = await make_user(level="view", project=project)
    await AccessGrant.create(user=project_allows, connection=site, level="full", may_see_contacts=False)
    staff = await make_user(staff=True)
    assert not (await Access.for_user(both_hidden)).sees_contacts(site.id)
    assert (await Access.for_user(connection_allows)).sees_contacts(site.id)
    assert (await Access.for_user(project_allows)).sees_contacts(site.id)
    assert (await Access.for_user(staff)).sees_contacts(site.id)
    # an existing grant (made without saying) shows them: nobody sees less after the upgrade
    assert (await Access.for_user(await make_user(level="view", connection=site))).sees_contacts(site.id)


# --- pages --------------------------------------------------------------------------------------------


async def test_the_calls_table_and_the_call_page_mask_for_a_masked_user(perezvon_client):
    site = await _site()
    call = await _client_call(site)
    await login(perezvon_client, await _masked_user(site))
    table = (await perezvon_client.get("/calls")).text
    assert_masked(table)
    detail = await perezvon_client.get(f"/calls/{call.id}")
    assert detail.status_code == 200
    assert_masked(detail.text)
    assert EMAIL_MASKED in detail.text and "yandex" in detail.text  # UTM is not masked
    assert "частично скрыты" in detail.text or "partly hidden" in detail.text
    # the recording, the tags and the rest of the page still work for them (docs: recordings stay)
    perezvon_client.cookies.clear()
    await login(perezvon_client, await make_user(level="view", connection=site))
    full = (await perezvon_client.get(f"/calls/{call.id}")).text
    assert_full(full)
    assert EMAIL in full and "частично скрыты" not in full


async def test_a_search_by_phone_finds_nothing_where_contacts_are_masked(perezvon_client):
    site = await _site()
    await _client_call(site)
    other = await make_call(site, phone="+79160000077", name="Пётр")
    await login(perezvon_client, await _masked_user(site))
    found = (await perezvon_client.get("/calls", params={"phone": "9161234533"})).text
    assert "Иван" not in found and PHONE_MASKED not in found
    assert "Пётр" in (await perezvon_client.get("/calls")).text  # without a phone the list is all there
    assert str(other.id) not in found
    perezvon_client.cookies.clear()
    await login(perezvon_client, await make_user(level="view", connection=site))
    assert PHONE in (await perezvon_client.get("/calls", params={"phone": "9161234533"})).text


async def _wait_export(client, location: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        state = (await client.get(location + "/status")).json()
        if state["state"] != "running" or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def _export_cells(client, csrf: str, site: Connection) -> list[tuple]:
    start = await client.post("/calls/export", data={"csrf_token": csrf, "connection": str(site.id)})
    assert start.status_code == 303
    location = start.headers["location"]
    assert (await _wait_export(client, location))["state"] == "ready"
    download = await client.get(location + "/download")
    sheet = openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active
    return list(sheet.iter_rows(values_only=True))


async def test_the_export_masks_per_connection_and_has_the_notes(perezvon_client):
    site = await _site()
    call = await _client_call(site)
    author = await make_user(level="edit", connection=site, first_name="Ольга")
    await CallNote.create(call=call, author=author, text="Клиент просил перезвонить вечером")
    await CallNote.create(call=call, author=author, text="Перезвонили")
    csrf = await login(perezvon_client, await _masked_user(site))
    rows = await _export_cells(perezvon_client, csrf, site)
    header, row = rows[0], dict(zip(rows[0], rows[1], strict=True))
    cells = "\n".join(str(value) for value in rows[1] if value is not None)
    assert_masked(cells)
    assert row[header[8]] == PHONE_MASKED and EMAIL_MASKED in cells
    notes = row["Заметки"] if "Заметки" in row else row["Notes"]
    assert notes == "Клиент просил перезвонить вечером\n\nПерезвонили"
    perezvon_client.cookies.clear()
    csrf = await login(perezvon_client, await make_user(level="view", connection=site))
    rows = await _export_cells(perezvon_client, csrf, site)
    assert rows[1][8] == PHONE and EMAIL in "\n".join(str(v) for v in rows[1] if v is not None)


async def test_the_read_api_masks_for_the_keys_user(perezvon_client):
    site = await _site()
    call = await _client_call(site)
    _, masked_key = await create_api_key(await _masked_user(site), "CRM")
    _, full_key = await create_api_key(await make_user(level="view", connection=site), "CRM")

    async def get(path, key, **params):
        answer = await perezvon_client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        return answer

    listing = await get("/api/v1/calls", masked_key)
    assert listing.json()["calls"][0]["lead"]["phone"] == PHONE_MASKED
    assert_masked(listing.text)
    one = await get(f"/api/v1/calls/{call.id}", masked_key)
    assert one.json()["lead"]["phone"] == PHONE_MASKED
    assert_masked(one.text)
    assert (await get("/api/v1/calls", masked_key, phone="9161234533")).json()["calls"] == []
    assert (await get("/api/v1/calls", full_key)).json()["calls"][0]["lead"]["phone"] == PHONE
    assert len((await get("/api/v1/calls", full_key, phone="9161234533")).json()["calls"]) == 1


async def test_e_mails_to_a_masked_user_are_masked_and_others_are_not(perezvon_app, perezvon_site):
    masked = await _masked_user(perezvon_site, email=f"masked-{uuid.uuid4().hex[:6]}@example.com")
    seeing = await make_user(level="view", connection=perezvon_site, email=f"sees-{uuid.uuid4().hex[:6]}@example.com")
    shared = f"sales-{uuid.uuid4().hex[:6]}@example.com"  # no user has it: in full
    for email in (masked.email.upper(), seeing.email, shared):
        await NotificationRecipient.create(connection=perezvon_site, email=email)
    assert await addresses_without_contacts(perezvon_site.id, [masked.email.upper(), seeing.email, shared]) == {
        masked.email.upper()
    }
    call = await _client_call(perezvon_site)
    outbox = perezvon_app.host.registry.notifiers["mail"].outbox_dir
    assert await jobs.notify({"perezvon": perezvon_app}, "mail", "call_succeeded", str(call.id)) == "sent to 3"
    messages = [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in outbox.glob(f"*-call_succeeded-{call.id}*.eml")
    ]
    by_to = {message["To"]: message for message in messages}
    assert set(by_to) == {masked.email.upper(), f"{shared}, {seeing.email}"} or set(by_to) == {
        masked.email.upper(),
        f"{seeing.email}, {shared}",
    }

    def text_of(message) -> str:
        return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")

    masked_text = text_of(by_to[masked.email.upper()]) + str(by_to[masked.email.upper()]["Subject"])
    assert_masked(masked_text)
    assert "tel:" not in masked_text
    full_message = next(m for to, m in by_to.items() if to != masked.email.upper())
    assert "+7 916 123-45-33" in text_of(full_message)


async def test_notifications_running_at_once_share_their_reads_and_each_masks_for_its_own_site(
    perezvon_app, monkeypatch
):
    """The deliveries worker reads the notifications of many calls together (core/jobs.py); each still
    gets its own site's recipients, and the contacts masked only where its recipient may not see them."""
    masked_here, seen_here = await _site(), await _site()
    user = await _masked_user(masked_here, email=f"both-{uuid.uuid4().hex[:6]}@example.com")
    await AccessGrant.create(user=user, level="view", connection=seen_here, may_see_contacts=True)
    failures_only = f"failures-{uuid.uuid4().hex[:6]}@example.com"
    for site in (masked_here, seen_here):
        await NotificationRecipient.create(connection=site, email=user.email)
        await NotificationRecipient.create(connection=site, email=failures_only, on_success=False)
    calls = [await _client_call(site) for site in (masked_here, seen_here, masked_here, seen_here)]
    groups: list[int] = []
    load = jobs.load_notification_contexts

    async def counted(call_ids):
        groups.append(len(call_ids))
        return await load(call_ids)

    monkeypatch.setattr(jobs, "load_notification_contexts", counted)
    batches = jobs.DeliveryBatches()
    ctx = {"perezvon": perezvon_app, "deliveries": batches}
    try:
        outcomes = await asyncio.gather(*(jobs.notify(ctx, "mail", "call_succeeded", str(call.id)) for call in calls))
    finally:
        await batches.close()
    assert outcomes == ["sent to 1"] * 4  # the failures-only address is not among them
    assert sum(groups) == 4 and max(groups) > 1, groups
    outbox = perezvon_app.host.registry.notifiers["mail"].outbox_dir
    for call in calls:
        (path,) = outbox.glob(f"*-call_succeeded-{call.id}*.eml")
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["To"] == user.email
        text = "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
        if call.connection_id == masked_here.id:
            assert path.name.endswith("-masked.eml")
            assert_masked(text)
        else:
            assert "+7 916 123-45-33" in text


# --- the grant forms ------------------------------------------------------------------------------------


async def test_the_grant_forms_set_the_flag(perezvon_client):
    site = await _site()
    project = await Project.get(id=site.project_id)
    hidden, shown = await make_user(), await make_user()
    csrf = await login(perezvon_client, await make_user(staff=True))
    page = await perezvon_client.get("/staff/grants")
    assert 'name="may_see_contacts"' in page.text
    for user, extra in ((hidden, {}), (shown, {"may_see_contacts": "1"})):
        answer = await perezvon_client.post(
            "/staff/grants",
            data={
                "csrf_token": csrf,
                "action": "save",
                "user_id": str(user.id),
                "target": f"c:{site.id}",
                "level": "view",
                **extra,
            },
        )
        assert answer.status_code == 303
    assert not (await AccessGrant.get(user_id=hidden.id)).may_see_contacts
    assert (await AccessGrant.get(user_id=shown.id)).may_see_contacts
    assert "контакты скрыты" in (await perezvon_client.get("/staff/grants")).text or "contacts hidden" in page.text
    # the project's own form, by a user with full access to it
    perezvon_client.cookies.clear()
    csrf = await login(perezvon_client, await make_user(level="full", project=project))
    colleague = await make_user()
    assert 'name="may_see_contacts"' in (await perezvon_client.get(f"/projects/{project.id}")).text
    await perezvon_client.post(
        f"/projects/{project.id}/grants",
        data={"csrf_token": csrf, "action": "save", "phone": colleague.phone, "target": "project", "level": "edit"},
    )
    grant = await AccessGrant.get(user_id=colleague.id)
    assert (grant.project_id, grant.may_see_contacts) == (project.id, False)


async def test_an_apps_panel_masks_its_contact_keys(perezvon_client):
    """The site-forms panel lists kept e-mails by sender and subject: the client's own, often."""
    from perezvon.plugins.siteforms.addresses import technical_address
    from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus

    site = await _site()
    await InboundMessage.create(
        address=await technical_address(site.id),
        connection_id=site.id,
        received_at=dt.datetime.now(dt.UTC),
        size=3,
        mail_from=EMAIL,
        subject=f"Заявка: перезвоните {PHONE}",
        status=MessageStatus.NO_PHONE,
    )
    await login(perezvon_client, await _masked_user(site))
    page = (await perezvon_client.get(f"/connections/{site.id}")).text
    assert_masked(page)
    assert EMAIL_MASKED in page
    perezvon_client.cookies.clear()
    await login(perezvon_client, await make_user(level="view", connection=site))
    page = (await perezvon_client.get(f"/connections/{site.id}")).text
    assert EMAIL in page and PHONE in page


# --- notes -------------------------------------------------------------------------------------------------


async def test_notes_are_written_read_changed_and_refused_clearly(perezvon_client):
    site = await _site()
    call = await make_call(site, phone="+79160000555")
    editor = await make_user(level="edit", connection=site, first_name="Ольга", last_name="Котова")
    csrf = await login(perezvon_client, editor)
    added = await perezvon_client.post(
        f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "  Перезвонить в 18:00 <b>  "}
    )
    assert added.status_code == 303
    note = await CallNote.get(call_id=call.id)
    assert (note.text, note.author_id) == ("Перезвонить в 18:00 <b>", editor.id)
    page = (await perezvon_client.get(f"/calls/{call.id}")).text
    assert "Перезвонить в 18:00 &lt;b&gt;" in page and "Ольга Котова" in page
    # bad input: a clear 4xx with the reason, nothing stored
    empty = await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "   "})
    assert empty.status_code == 400 and "Заметка не может быть пустой." in empty.text
    long = await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "я" * 2001})
    assert long.status_code == 400 and "не длиннее 2000 символов" in long.text
    nul = await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "a\x00b"})
    assert nul.status_code == 422
    assert await CallNote.filter(call_id=call.id).count() == 1
    # the author changes it
    changed = await perezvon_client.post(
        f"/calls/{call.id}/notes/{note.id}", data={"csrf_token": csrf, "action": "save", "text": "Перезвонить завтра"}
    )
    assert changed.status_code == 303 and (await CallNote.get(id=note.id)).text == "Перезвонить завтра"
    assert (
        await perezvon_client.post(
            f"/calls/{call.id}/notes/{note.id}", data={"csrf_token": csrf, "action": "save", "text": ""}
        )
    ).status_code == 400
    assert (
        await perezvon_client.post(f"/calls/{call.id}/notes/99999999", data={"csrf_token": csrf, "action": "delete"})
    ).status_code == 404
    # another editor may not change it; a viewer reads it but cannot write
    perezvon_client.cookies.clear()
    csrf = await login(perezvon_client, await make_user(level="edit", connection=site))
    refused = await perezvon_client.post(
        f"/calls/{call.id}/notes/{note.id}", data={"csrf_token": csrf, "action": "delete"}
    )
    assert refused.status_code == 403 and await CallNote.exists(id=note.id)
    perezvon_client.cookies.clear()
    csrf = await login(perezvon_client, await make_user(level="view", connection=site))
    page = await perezvon_client.get(f"/calls/{call.id}")
    assert "Перезвонить завтра" in page.text and f'action="/calls/{call.id}/notes"' not in page.text
    assert (
        await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "x"})
    ).status_code == 403
    # full access deletes anyone's note
    perezvon_client.cookies.clear()
    csrf = await login(perezvon_client, await make_user(level="full", connection=site))
    deleted = await perezvon_client.post(
        f"/calls/{call.id}/notes/{note.id}", data={"csrf_token": csrf, "action": "delete"}
    )
    assert deleted.status_code == 303 and not await CallNote.exists(id=note.id)


async def test_a_note_in_english(perezvon_client):
    site = await _site()
    call = await make_call(site, phone="+79160000556")
    perezvon_client.cookies.set("pz_lang", "en")
    csrf = await login(perezvon_client, await make_user(level="edit", connection=site))
    empty = await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": ""})
    assert empty.status_code == 400 and "A note cannot be empty." in empty.text
    assert csrf_of(empty.text)
    saved = await perezvon_client.post(f"/calls/{call.id}/notes", data={"csrf_token": csrf, "text": "Call back at six"})
    assert saved.status_code == 303
    page = (await perezvon_client.get(f"/calls/{call.id}")).text
    assert "Call back at six" in page and "Notes" in page and "Заметки" not in page
