"""Issue 17's "done when", end to end on the demo (docs/integrations.md, docs/telegram.md, docs/sms.md).

The demo connection is seeded as ``perezvon demo`` seeds it. Four local services answer as the real
ones are documented to: the Telegram Bot API (tests/telegram_emulator.py), a Bitrix24 portal
(tests/bitrix24_emulator.py), an amoCRM account with OAuth (tests/amocrm_emulator.py) and SMS.ru
(tests/sms_emulator.py). An operator signs in to the admin over real HTTP, links a Telegram chat by
the /start deep link and sets up Bitrix24, amoCRM and the SMS follow-up through the admin's own
settings forms. Then visitors leave leads from the widget of the demo's sample shop page in real
Chromium, and the workers run: the simulator calls back (and records the conversation), and every
service hears of it -- including after a refusal that is tried again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import time
import uuid
import wave
from pathlib import Path

import pytest
from amocrm_emulator import CLIENT_ID, CLIENT_SECRET, FIRST_STATUS, PIPELINE, REDIRECT, AmoCRM
from arq.constants import in_progress_key_prefix
from bitrix24_emulator import Bitrix24Emulator
from live_helpers import live_server
from sms_emulator import SMSRU_KEY, Providers
from telegram_emulator import BotApiEmulator
from test_admin_helpers import csrf_of, make_user, signed_in_over_http

from perezvon.core import enablement
from perezvon.core.demo import seed_demo
from perezvon.core.models import Call, Connection, Lead, NotificationRecipient
from perezvon.core.queue import QUEUES
from perezvon.plugins.sms.models import SentSms
from perezvon.plugins.telegram.models import TelegramLink
from perezvon.plugins.telegram.notifier import TelegramNotifier
from perezvon.plugins.telegram.poller import TelegramPoller
from tests.site.sitehelpers import WIDGET, LiveServer, wait_for

TOKEN = "987654321:REACH-demo-token-for-the-suite-0002"
FOLLOW_UP = "Мы не смогли до вас дозвониться"
INTEGRATIONS = ("bitrix24", "amocrm", "sms")


def visitor_digits(ending: str) -> str:
    """Ten digits of a Russian mobile number (typed after the widget's +7) with the given ending."""
    return "9" + "".join(random.choices("123456789", k=9 - len(ending))) + ending


async def make_deliveries_due(redis) -> int:
    """Bring the deliveries' retries forward to now; a redial stays where it is (three minutes ahead)."""
    now = int(time.time() * 1000)
    moved = 0
    for queue in QUEUES:
        for job_id in await redis.zrangebyscore(queue, now, "+inf"):
            if job_id.decode().startswith("deliver:"):
                await redis.zadd(queue, {job_id: now})
                await redis.delete(in_progress_key_prefix + job_id.decode())
                moved += 1
    return moved


async def leave_a_lead(browser, live: LiveServer, domain: str, token: str, digits: str, name: str) -> None:
    """A visitor on the demo's sample shop page opens the widget by its link and leaves the number."""
    context = await browser.new_context(locale="ru-RU")  # a visitor of their own: no widget session yet
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"http://{domain}:{live.port}/t/{token}/shop.html")
        await page.locator("a[href='#callme']").click()  # the demo's "Перезвоните мне" link
        await page.locator(WIDGET).wait_for(timeout=30000)
        await page.locator(f"{WIDGET} input[name=name]").fill(name)
        phone = page.locator(f"{WIDGET} input[type=tel]")
        await phone.click()
        await phone.press_sequentially(digits)
        await page.locator(f"{WIDGET} input[type=checkbox]").check()  # the consent
        await page.locator(f"{WIDGET} button.go").click()
        await page.locator("[data-perezvon=widget] [data-screen^=closing]").wait_for(state="attached", timeout=30000)
        assert errors == []
    finally:
        await context.close()


async def save_form(admin, url: str, data: dict[str, str]) -> None:
    """The admin's settings form of an integration, filled in and saved as a person does."""
    page = await admin.get(url)
    assert page.status_code == 200, page.text
    csrf = csrf_of(page.text)
    saved = await admin.post(url, data={"csrf_token": csrf, **data})
    assert saved.status_code == 303, saved.text
    page = await admin.get(url)
    assert "Сохранено" in page.text and "Сервис не смог проверить" not in page.text, page.text
    switched = await admin.post(f"{url}/toggle", data={"csrf_token": csrf, "on": "1"})  # the card's switch
    assert switched.status_code == 303, switched.text


@pytest.fixture
async def demo(perezvon_app):
    """The demo connection as ``perezvon demo`` makes it, also reachable on a ``*.localhost`` name
    (the live site helper serves customer pages there); put back as it was afterwards."""
    seeded = await seed_demo(perezvon_app)
    connection = await Connection.get(id=seeded["connection_id"])
    extra = list(connection.extra_domains)
    domain = f"demo-{uuid.uuid4().hex[:8]}.localhost"
    connection.extra_domains = [*extra, domain]
    await connection.save()
    yield seeded, connection, domain
    connection.extra_domains = extra
    await connection.save(update_fields=["extra_domains"])
    for key in INTEGRATIONS:
        await enablement.switch(connection, enablement.INTEGRATION, key, False)
    await NotificationRecipient.filter(connection_id=connection.id, email__startswith="reach-").delete()
    redis = perezvon_app.redis
    stale = [key async for key in redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:  # the busy visitor's redial, three minutes ahead
        await redis.delete(*stale)


@pytest.fixture
async def bot():
    emulator = BotApiEmulator(TOKEN, username="perezvon_demo_bot")
    async with live_server(emulator.app()) as url:
        emulator.url = url
        yield emulator


@pytest.fixture
async def telegram(perezvon_app, bot):
    """The deployment's Telegram notifier (plugins.toml's token and api_url) pointed at the emulator,
    with its /start poller running as ``perezvon serve`` runs it."""
    notifiers = perezvon_app.host.registry.notifiers
    original = notifiers["telegram"]
    settings = {
        **perezvon_app.host.settings_of("telegram"),
        "token": TOKEN,
        "api_url": bot.url,
        "poll_timeout": 1,
        "chat_interval": 0.3,
        "max_retry_after": 5,
    }
    notifier = TelegramNotifier(settings, perezvon_app.settings)
    notifiers["telegram"] = notifier
    poller = TelegramPoller(notifier)
    await poller.start()
    try:
        yield notifier
    finally:
        await poller.stop()
        notifiers["telegram"] = original
        await notifier.api.push.close()


@pytest.fixture
async def services():
    amo = AmoCRM()
    amo.server = await asyncio.start_server(amo.handle, "127.0.0.1", 0)
    try:
        async with Bitrix24Emulator() as portal, Providers() as sms:
            yield portal, amo, sms
    finally:
        amo.server.close()
        await amo.server.wait_closed()


async def test_a_widget_lead_on_the_demo_reaches_telegram_bitrix24_amocrm_and_a_failed_callback_one_sms(
    perezvon_app, perezvon_run_jobs, browser, demo, bot, telegram, services
):
    seeded, connection, domain = demo
    portal, amo, sms = services
    live = LiveServer(perezvon_app)
    await live.start()
    try:
        operator = await make_user(
            level="full", project=await connection.project, email=f"reach-{uuid.uuid4().hex[:8]}@example.com"
        )
        await NotificationRecipient.create(connection=connection, email=operator.email)
        async with signed_in_over_http(live.base_url, operator, "ru") as admin:
            # the operator links their Telegram chat by the deep link the profile shows
            page = await admin.get("/profile")
            made = await admin.post(
                "/profile", data={"csrf_token": csrf_of(page.text), "panel": "telegram", "action": "link"}
            )
            assert made.status_code == 303
            page = await admin.get("/profile")
            found = re.search(r'href="https://t\.me/perezvon_demo_bot\?start=([A-Za-z0-9_-]{20,64})"', page.text)
            assert found, page.text
            chat = 6_000_000 + random.randrange(1_000_000)
            bot.user_writes(chat, f"/start {found.group(1)}", first_name="Олег")  # opening the link in Telegram
            link = await wait_for(lambda: TelegramLink.get_or_none(user_id=operator.id, code=None), message="the link")
            assert link.chat_id == chat

            async def welcomed() -> bool:
                return bool(bot.messages_to(chat))

            await wait_for(welcomed, message="the bot's welcome")

            # the three integrations, through their settings forms (each checks the service on saving)
            base = f"/connections/{connection.id}/integrations"
            await save_form(admin, f"{base}/bitrix24", {"webhook_url": portal.webhook, "responsible_id": "7"})
            await save_form(
                admin,
                f"{base}/amocrm",
                {
                    "account": amo.url,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uri": REDIRECT,
                    "authorization_code": amo.new_code(),
                    "pipeline_id": str(PIPELINE),
                    "status_id": str(FIRST_STATUS),
                },
            )
            await save_form(
                admin,
                f"{base}/sms",
                {
                    "provider": "smsru",
                    "api_id": SMSRU_KEY,
                    "base_url": sms.url,
                    "after_failed_attempt": "on",
                    "business_card": "on",
                    "opt_out_link": "on",
                    "company": "Автосалон «Демо»",
                    "language": "ru",
                },
            )
        on = (await enablement.keys_on(connection))[enablement.INTEGRATION]
        assert set(INTEGRATIONS) <= set(on)
        assert amo.calls("POST", "/oauth2/access_token")  # the form's check exchanged the one-time code
        assert [m for m, _ in portal.calls][-2:] == ["scope", "user.get"]

        # every service refuses once, as they do under load: each delivery is tried again
        portal.limit("telephony.externalcall.attachRecord")  # 503 QUERY_LIMIT_EXCEEDED
        amo.faults = [("POST", r"/api/v4/leads/\d+/notes", 503)]
        sms.forced = [220]  # SMS.ru: "the service is temporarily unavailable, try later"
        bot.fail_next[chat] = [(429, 1)]

        answered, busy = visitor_digits("77"), visitor_digits("0486")  # 0486: busy (tests/plugins.toml)
        await leave_a_lead(browser, live, domain, seeded["site_token"], answered, "Анна Демо")
        await leave_a_lead(browser, live, domain, seeded["site_token"], busy, "Борис Демо")
        lead = await wait_for(
            lambda: Lead.get_or_none(connection_id=connection.id, phone=f"+7{answered}"), message="the first lead"
        )
        failed_lead = await wait_for(
            lambda: Lead.get_or_none(connection_id=connection.id, phone=f"+7{busy}"), message="the second lead"
        )
        assert lead.source == "widget" and lead.name == "Анна Демо"
        call = await Call.get(lead_id=lead.id)
        failed = await Call.get(lead_id=failed_lead.id)

        deadline = time.monotonic() + 120
        while True:
            await perezvon_run_jobs(60)
            call = await Call.get(id=call.id)
            failed = await Call.get(id=failed.id)
            done = (
                call.state == "finished"
                and failed.attempts_made >= 1
                and portal.records
                and [n for n in amo.notes if n["note_type"] == "call_out"]
                and {f"7{busy}", f"7{answered}"} <= {to for _, to, _ in sms.sent}
                and len([m for m in bot.messages_to(chat) if "Анна Демо" in m["plain"]]) >= 2
            )
            if done or time.monotonic() > deadline:
                break
            await make_deliveries_due(perezvon_app.redis)
        public = perezvon_app.settings.public_url.rstrip("/")

        # the simulator answered, talked, and recorded: a real WAV kept in the storage
        assert call.display_status == "successful" and call.duration_seconds > 0, call.reason
        recording = Path(call.recording)
        assert recording.is_file() and recording.parent.parent.parent.parent.name == "recordings"
        with wave.open(str(recording)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
            assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2) and 0.5 <= seconds <= 5.0

        # Telegram: the linked operator heard of the lead, with the button to the call in the admin
        about = [m for m in bot.messages_to(chat) if "Анна Демо" in m["plain"]]
        # the new lead (its first try waited out a 429, so it may come second) and the call's result
        assert sorted(m["plain"].splitlines()[0] for m in about) == ["✅ Звонок состоялся", "📞 Новая заявка"], about
        for message in about:
            assert f"+7{answered}" in message["plain"]
            assert message["reply_markup"] == {
                "inline_keyboard": [[{"text": "Открыть в админке", "url": f"{public}/calls/{call.id}"}]]
            }
        assert any(status == 429 for _, to, _, status in bot.attempts if to == chat)  # waited out, then sent

        # Bitrix24: the contact, the lead, and the call in its telephony with the duration and the recording
        [contact] = [c for c in portal.contacts.values() if c["PHONE"][0]["VALUE"] == f"+7{answered}"]
        assert contact["NAME"] == "Анна Демо"
        [b24_lead] = [x for x in portal.leads.values() if x.get("CONTACT_ID") == int(contact["ID"])]
        assert (b24_lead["ORIGINATOR_ID"], b24_lead["ORIGIN_ID"]) == ("perezvon", str(lead.id))
        [registered] = [
            r
            for r in portal.called("telephony.externalcall.register")
            if r["EXTERNAL_CALL_ID"] == f"perezvon-{call.id}"
        ]
        assert (registered["CRM_ENTITY_TYPE"], registered["CRM_ENTITY_ID"]) == ("LEAD", int(b24_lead["ID"]))
        [b24_call] = [
            k for k, v in portal.telephony.items() if v["params"]["EXTERNAL_CALL_ID"] == f"perezvon-{call.id}"
        ]
        finished = [f for f in portal.called("telephony.externalcall.finish") if f["CALL_ID"] == b24_call]
        assert finished and int(finished[-1]["DURATION"]) == call.duration_seconds
        assert portal.statistics[b24_call]["CALL_DURATION"] == call.duration_seconds
        record = portal.records[b24_call]
        assert record["FILENAME"].endswith(".wav") and record["data"] == recording.read_bytes()
        tries = [p for p in portal.called("telephony.externalcall.attachrecord") if p["CALL_ID"] == b24_call]
        assert len(tries) == 2  # refused once (503), attached on the retry

        # amoCRM: the contact, the lead, and the call note linking the recording
        [amo_contact] = [c for c in amo.contacts.values() if f"+7{answered}" in str(c.get("custom_fields_values"))]
        assert amo_contact["name"] == "Анна Демо"
        [amo_lead] = [x for x in amo.leads.values() if x["_embedded"]["contacts"] == [{"id": amo_contact["id"]}]]
        assert amo_lead["pipeline_id"] == PIPELINE and amo_lead["status_id"] == FIRST_STATUS
        [note] = [n for n in amo.notes if n["entity_id"] == amo_lead["id"] and n["note_type"] == "call_out"]
        assert note["params"]["uniq"] == str(call.id) and note["params"]["duration"] == call.duration_seconds
        assert note["params"]["link"] == f"{public}/calls/{call.id}/recording"

        # the SMS: the busy visitor's follow-up (after SMS.ru's "try later"), the other's business card
        def texts_to(digits: str) -> list[str]:
            return [text for _, to, text in sms.sent if to == f"7{digits}"]

        [follow_up] = texts_to(busy)
        assert follow_up.startswith(FOLLOW_UP) and "Автосалон «Демо»" in follow_up
        assert failed.state == "scheduled" and failed.attempts_made == 1  # a redial in three minutes
        [card] = texts_to(answered)  # the answered visitor: no follow-up, the business card
        assert card.startswith("Спасибо за звонок! Автосалон «Демо»"), card
        assert (await SentSms.get(key=f"followup:{failed.id}")).state == "sent"

        # the jobs again (a restart, a retry, a duplicate): nothing is sent twice
        sent_before = (len(sms.sent), len(bot.sent), len(portal.records), len(amo.notes))
        await make_deliveries_due(perezvon_app.redis)
        await perezvon_run_jobs(60)
        assert texts_to(busy) == [follow_up]
        assert (len(sms.sent), len(bot.sent), len(portal.records), len(amo.notes)) == sent_before
        assert dt.datetime.now(dt.UTC) < failed.next_attempt_at  # the redial has not come yet
    finally:
        await live.stop()
