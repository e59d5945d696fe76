"""The Telegram notifier (plugins/telegram, docs/telegram.md) against a local Bot API emulator
(tests/telegram_emulator.py) on a real port: linking from the admin profile over real HTTP, the
messages and their HTML, 429 and 5xx retries, a bot blocked by its user, getMe as the check."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import re
import time
from pathlib import Path

import pytest
from arq import Retry
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from live_helpers import live_server
from telegram_emulator import BotApiEmulator, HtmlError, parse_html
from test_admin_helpers import csrf_of, make_call, make_user, signed_in_over_http

from perezvon.api import CheckFailed, Notification, ServerContext
from perezvon.core import jobs
from perezvon.core.masking import mask_phone
from perezvon.core.models import AccessGrant, Attempt, NotificationRecipient
from perezvon.plugins.telegram.models import TelegramLink
from perezvon.plugins.telegram.notifier import TelegramNotifier
from perezvon.plugins.telegram.poller import TelegramPoller
from perezvon.plugins.telegram.texts import LOCALE_DIR, render
from perezvon.web.app import create_app

TOKEN = "123456789:TEST-token-for-the-suite-only-0001"
_chats = itertools.count(5_000_001)


@pytest.fixture
async def bot():
    emulator = BotApiEmulator(TOKEN)
    async with live_server(emulator.app()) as url:
        emulator.url = url
        yield emulator


@pytest.fixture
async def telegram(perezvon_app, bot):
    """The registered notifier swapped for one pointed at the emulator (tests/plugins.toml has a dead address)."""
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
    yield notifier
    notifiers["telegram"] = original
    await notifier.api.push.close()


async def linked_user(bot, connection, *, language="ru", **fields):
    """A user with access to the connection's project, a recipient of its notifications, who linked a chat."""
    user = await make_user(level="full", project=await connection.project, **fields)
    await NotificationRecipient.create(connection=connection, email=user.email)
    chat = next(_chats)
    bot.chats[chat] = {"id": chat, "first_name": user.first_name}
    await TelegramLink.create(user_id=user.id, chat_id=chat, language=language, linked_at=dt.datetime.now(dt.UTC))
    return user, chat


async def failed_call(connection):
    call = await make_call(
        connection,
        status="unsuccessful",
        name="Иван <script>&",
        reason="the subscriber could not be reached in time: busy",
    )
    started = dt.datetime(2026, 3, 12, 9, 5, tzinfo=dt.UTC)
    for number, operator, client, status, reason in (
        (1, 486, None, "failed", "operator number: busy"),
        (2, 200, 486, "unsuccessful", "the subscriber could not be reached in time: busy"),
    ):
        await Attempt.create(
            call=call,
            number=number,
            direction="operator_first",
            started_at=started + dt.timedelta(minutes=3 * number),
            operator_status=operator,
            client_status=client,
            display_status=status,
            reason=reason,
        )
    return call


def ctx(app, job_try=1):
    return {"perezvon": app, "job_try": job_try}


# --- linking ------------------------------------------------------------------------------------------


async def test_a_user_links_their_chat_from_the_profile_and_unlinks_it(perezvon_app, perezvon_site, bot, telegram):
    user = await make_user(level="full", project=await perezvon_site.project)
    poller = TelegramPoller(telegram)
    await poller.start()
    try:
        async with (
            live_server(create_app(perezvon_app, manage_lifecycle=False)) as base,
            signed_in_over_http(base, user, "ru") as admin,
        ):
            page = await admin.get("/profile")
            assert page.status_code == 200
            assert 'data-state="not-linked"' in page.text and "Привязать Телеграм" in page.text
            assert TOKEN not in page.text and "t.me/" not in page.text
            made = await admin.post(
                "/profile", data={"csrf_token": csrf_of(page.text), "panel": "telegram", "action": "link"}
            )
            assert made.status_code == 303 and made.headers["location"].endswith("/profile")
            page = await admin.get("/profile")
            found = re.search(r'href="https://t\.me/perezvon_test_bot\?start=([A-Za-z0-9_-]{20,64})"', page.text)
            assert found, page.text
            code = found.group(1)
            assert "Откройте ссылку ниже" in page.text  # the flash, in Russian

            chat = next(_chats)
            bot.user_writes(chat, f"/start {code}", first_name="Анна")  # what opening the deep link does
            await wait_for(lambda: bot.messages_to(chat))
            assert bot.messages_to(chat)[0]["text"] == "Готово: уведомления Perezvon будут приходить в этот чат."
            link = await TelegramLink.get(user_id=user.id)
            assert link.chat_id == chat and link.code is None and link.language == "ru"
            page = await admin.get("/profile")
            assert 'data-state="linked"' in page.text and "Анна" in page.text
            assert 'value="unlink"' in page.text and "Отвязать" in page.text

            # the code was single-use: someone else's chat with it links nothing
            intruder = next(_chats)
            bot.user_writes(intruder, f"/start {code}", language_code="en")
            await wait_for(lambda: bot.messages_to(intruder))
            assert bot.messages_to(intruder)[0]["text"].startswith("This link is expired or was used already.")
            assert (await TelegramLink.get(user_id=user.id)).chat_id == chat

            unlinked = await admin.post(
                "/profile", data={"csrf_token": csrf_of(page.text), "panel": "telegram", "action": "unlink"}
            )
            assert unlinked.status_code == 303
            page = await admin.get("/profile")
            assert 'data-state="not-linked"' in page.text
            assert not await TelegramLink.exists(user_id=user.id)
            assert bot.messages_to(chat)[-1]["text"] == "Этот чат отвязан от Perezvon."

            # a button the panel does not have is refused
            refused = await admin.post(
                "/profile", data={"csrf_token": csrf_of(page.text), "panel": "telegram", "action": "drop_tables"}
            )
            assert refused.status_code == 404

            # the same panel in English, with no Russian in it
            async with signed_in_over_http(base, await make_user(), "en") as english:
                page = await english.get("/profile")
                panel = page.text.split('id="panel-telegram"')[1].split("</section>")[0]
                assert "Not linked." in panel and "Link Telegram" in panel
                assert not re.search("[а-яА-ЯёЁ]", panel)
                await english.post(
                    "/profile", data={"csrf_token": csrf_of(page.text), "panel": "telegram", "action": "link"}
                )
                panel = (await english.get("/profile")).text.split('id="panel-telegram"')[1].split("</section>")[0]
                assert "Open @perezvon_test_bot in Telegram" in panel and "The link works once, for 15 minutes" in panel
    finally:
        await poller.stop()


async def test_an_expired_code_links_nothing(perezvon_app, bot, telegram):
    user = await make_user()
    await telegram.profile_panel_action(user.id, "link", {}, "en")
    link = await TelegramLink.get(user_id=user.id)
    await TelegramLink.filter(user_id=user.id).update(code_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    chat = next(_chats)
    bot.user_writes(chat, f"/start {link.code}", language_code="en")
    assert await TelegramPoller(telegram).poll_once(timeout=0) >= 1
    assert bot.messages_to(chat)[0]["text"].startswith("This link is expired")
    assert (await TelegramLink.get(user_id=user.id)).chat_id is None
    # the offset moved past the update: it is not handled twice
    assert await TelegramPoller(telegram).poll_once(timeout=0) == 0
    assert len(bot.messages_to(chat)) == 1
    # /start without a code (the bot found by its name) gets the way to link, in the app's language
    bot.user_writes(chat, "/start", language_code="ru")
    assert await TelegramPoller(telegram).poll_once(timeout=0) == 1
    assert bot.messages_to(chat)[-1]["text"] == (
        "Чтобы привязать этот чат, откройте ссылку из своего профиля в админке Perezvon."
    )


# --- messages ------------------------------------------------------------------------------------------


async def test_a_failed_call_reaches_the_linked_users_with_the_chain_and_a_button(
    perezvon_app, perezvon_site, bot, telegram
):
    russian, ru_chat = await linked_user(bot, perezvon_site, language="ru")
    english, en_chat = await linked_user(bot, perezvon_site, language="en")
    not_linked = await make_user(level="full", project=await perezvon_site.project)
    await NotificationRecipient.create(connection=perezvon_site, email=not_linked.email)
    call = await failed_call(perezvon_site)

    outcome = await jobs.notify(ctx(perezvon_app), "telegram", "call_failed", str(call.id))
    assert outcome.startswith("sent to 3")

    (ru,) = bot.messages_to(ru_chat)
    (en,) = bot.messages_to(en_chat)
    assert ru["plain"].startswith("❌ Звонок не состоялся") and "Цепочка попыток" in ru["plain"]
    assert "1. " in ru["plain"] and "оператор 486" in ru["plain"] and "клиент 486" in ru["plain"]
    assert "Иван <script>&" in ru["plain"]  # the visitor's text arrives as text, escaped in the HTML
    assert "&lt;script&gt;&amp;" in ru["text"]
    assert en["plain"].startswith("❌ The callback did not take place") and "Attempt chain" in en["plain"]
    url = f"{perezvon_app.settings.public_url.rstrip('/')}/calls/{call.id}"
    assert ru["reply_markup"] == {"inline_keyboard": [[{"text": "Открыть в админке", "url": url}]]}
    assert en["reply_markup"]["inline_keyboard"][0][0]["text"] == "Open in the admin"
    # the user without a linked chat got nothing: only the two chats were written to
    assert {chat for _, chat, _, _ in bot.attempts} == {ru_chat, en_chat}

    # the same job run again (a retry, a restart) sends nothing twice
    await jobs.notify(ctx(perezvon_app, job_try=2), "telegram", "call_failed", str(call.id))
    assert len(bot.messages_to(ru_chat)) == 1 and len(bot.messages_to(en_chat)) == 1


async def test_a_user_who_may_not_see_contacts_gets_the_phone_masked(perezvon_app, perezvon_site, bot, telegram):
    """Telegram is one of the exits masking covers (docs/admin.md): the core's job sends a masked
    copy to the recipients whose grants lack the contacts right, and the chat gets only that copy."""
    sees, sees_chat = await linked_user(bot, perezvon_site)
    blind, blind_chat = await linked_user(bot, perezvon_site)
    await AccessGrant.filter(user_id=blind.id).update(may_see_contacts=False)
    call = await failed_call(perezvon_site)
    phone = (await call.lead).phone

    assert (await jobs.notify(ctx(perezvon_app), "telegram", "call_failed", str(call.id))).startswith("sent")

    (full,) = bot.messages_to(sees_chat)
    (masked,) = bot.messages_to(blind_chat)
    assert phone in full["plain"]
    assert mask_phone(phone) in masked["plain"]
    assert phone[2:] not in masked["text"]  # nor the number without its +7


async def test_the_registered_notifier_without_a_token_sends_nothing_and_asks_for_no_new_lead_jobs(perezvon_app):
    registered = perezvon_app.host.registry.notifiers["telegram"]
    assert not registered.api.configured and not registered.wants_new_leads()
    await registered.send(Notification("call_failed", ("a@example.com",), "c1", {}))  # no request, no error
    assert (await registered.profile_panel_data(1, "ru"))["configured"] is False
    # `perezvon serve` gets the poller from the plugin; without a token it polls nothing
    context = ServerContext(intake=perezvon_app.intake, host="127.0.0.1", ports={})
    (poller,) = [s for s in perezvon_app.host.servers(context) if isinstance(s, TelegramPoller)]
    await poller.start()
    assert poller._task is None
    await poller.stop()


async def test_a_lead_from_the_site_that_fails_reaches_the_linked_user_through_the_workers(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, bot, telegram
):
    user, chat = await linked_user(bot, perezvon_site, language="en")
    # every redial at once: the client's number is busy (the simulator's rule for ...0486)
    perezvon_site.redial_matrix = {
        "operator_first": {str(n): {"*-*": {"period": 0, "direction": "operator_first"}} for n in range(2, 6)}
    }
    await perezvon_site.save()
    response = await perezvon_client.post(
        "/api/v1/leads",
        json={"token": perezvon_site.token, "phone": new_phone("0486"), "consent": True, "name": "Maria"},
    )
    assert response.status_code == 201, response.text
    await perezvon_run_jobs()
    new_lead, message = bot.messages_to(chat)  # the new lead as it came, then the failed callback
    assert new_lead["plain"].startswith("📞 New lead") and "Maria" in new_lead["plain"]
    assert new_lead["reply_markup"] == message["reply_markup"]
    assert message["plain"].startswith("❌ The callback did not take place") and "Maria" in message["plain"]
    chain = message["plain"].split("Attempt chain:")[1].strip().splitlines()
    assert len(chain) >= 2 and chain[0].startswith("1. ") and "client 486" in message["plain"]
    button = message["reply_markup"]["inline_keyboard"][0][0]
    assert button["url"].endswith(f"/calls/{response.json()['call_id']}")


async def test_a_429_is_waited_out_and_the_message_delivered_once(perezvon_app, perezvon_site, bot, telegram):
    user, chat = await linked_user(bot, perezvon_site)
    call = await make_call(perezvon_site, status="successful")
    bot.fail_next[chat] = [(429, 1)]
    await jobs.notify(ctx(perezvon_app), "telegram", "call_succeeded", str(call.id))
    tries = [(at, status) for at, c, _, status in bot.attempts if c == chat]
    assert [status for _, status in tries] == [429, 200]
    assert tries[1][0] - tries[0][0] >= 1.0  # retry_after was waited out
    (message,) = bot.messages_to(chat)
    assert message["plain"].startswith("✅ Звонок состоялся")


async def test_a_5xx_is_retried_by_the_job_and_delivered_once(perezvon_app, perezvon_site, bot, telegram):
    user, chat = await linked_user(bot, perezvon_site, language="en")
    other, other_chat = await linked_user(bot, perezvon_site, language="en")
    call = await failed_call(perezvon_site)
    failing = chat if chat > other_chat else other_chat
    bot.fail_next[failing] = [(502, None)]
    with pytest.raises(Retry):
        await jobs.notify(ctx(perezvon_app), "telegram", "call_failed", str(call.id))
    await jobs.notify(ctx(perezvon_app, job_try=2), "telegram", "call_failed", str(call.id))
    assert len(bot.messages_to(chat)) == 1 and len(bot.messages_to(other_chat)) == 1  # the other not sent twice


async def test_a_blocked_bot_is_not_retried_and_the_link_is_marked(perezvon_app, perezvon_site, bot, telegram):
    user, chat = await linked_user(bot, perezvon_site)
    bot.blocked.add(chat)
    call = await failed_call(perezvon_site)
    outcome = await jobs.notify(ctx(perezvon_app), "telegram", "call_failed", str(call.id))
    assert outcome.startswith("sent to")  # no Retry raised
    assert [status for _, c, _, status in bot.attempts if c == chat] == [403]
    assert (await TelegramLink.get(user_id=user.id)).blocked_at is not None
    # nothing more is tried for that chat
    await jobs.notify(ctx(perezvon_app), "telegram", "call_succeeded", str(call.id))
    assert len([1 for _, c, _, _ in bot.attempts if c == chat]) == 1
    data = await telegram.profile_panel_data(user.id, "ru")
    assert data["linked"] and data["blocked"]


async def test_digest_and_problem_in_both_languages_paced_per_chat(perezvon_app, perezvon_site, bot, telegram):
    russian, ru_chat = await linked_user(bot, perezvon_site, language="ru")
    english, en_chat = await linked_user(bot, perezvon_site, language="en")
    connection = {"id": perezvon_site.id, "domain": perezvon_site.domain, "name": "Автосалон «Север» & Co"}
    digest = {
        "connection": connection,
        "period": {"kind": "daily", "from": "2026-12-03T00:00:00+03:00", "to": "2026-12-04T00:00:00+03:00"},
        "totals": {"calls": 12, "handled": 9, "lost": 3},
        "by_source": [{"title": "Виджет <звонок>", "calls": 10, "handled": 8}],
        "by_channel": [{"channel": "ads", "calls": 7, "handled": 5}],
        "dashboard_url": "https://perezvon.example/dashboard?connection=1",
    }
    problem = {
        "connection": None,
        "problem": {"code": "operator_failing", "details": {"number": "+74951234567", "failures": 5}},
        "url": "https://perezvon.example/connections/1/settings/numbers",
    }
    recipients = (russian.email.upper(), english.email)  # addresses are matched case-insensitively
    await telegram.send(Notification("digest", recipients, f"digest:{perezvon_site.id}:2026-12-03", digest))
    await telegram.send(Notification("problem", recipients, f"problem:{perezvon_site.id}:op", problem))
    ru_digest, ru_problem = bot.messages_to(ru_chat)
    en_digest, en_problem = bot.messages_to(en_chat)
    assert (
        ru_digest["plain"].startswith("📊 Отчёт за день")
        and "Звонков: 12, обработано: 9, потеряно: 3" in ru_digest["plain"]
    )
    assert "Виджет <звонок>: 10 / 8" in ru_digest["plain"] and "Автосалон «Север» & Co" in ru_digest["plain"]
    assert ru_digest["reply_markup"]["inline_keyboard"][0][0] == {
        "text": "Открыть сводку",
        "url": "https://perezvon.example/dashboard?connection=1",
    }
    assert en_digest["plain"].startswith("📊 Daily report") and "Calls: 12, handled: 9, lost: 3" in en_digest["plain"]
    assert ru_problem["plain"].startswith("⚠️ Номер оператора раз за разом не отвечает")
    assert en_problem["plain"].startswith("⚠️ An operator number keeps failing") and "failures: 5" in en_problem["plain"]
    # one chat is written to at most once per chat_interval (0.3 s here)
    times = [at for at, c, _, status in bot.attempts if c == ru_chat and status == 200]
    assert times[1] - times[0] >= 0.29
    # a kind that is not for Telegram (an activation link) is not sent
    await telegram.send(Notification("activation", recipients, "u1", {"link": "https://x.example"}))
    assert len(bot.messages_to(ru_chat)) == 2


def test_the_html_of_every_kind_parses_as_telegram_parses_it():
    hostile = {"name": "</b><a href=x>&amp;", "domain": "a&b.example", "timezone": "Nowhere/Else"}
    data = {
        "connection": hostile,
        "lead": {"name": "<i>", "phone": "+7 & 1", "page_url": 'https://x.example/?a="1"&b=<2>'},
        "call": {"id": "c1", "duration_seconds": 30, "reason": "<odd>"},
        "attempts": [{"number": 1, "operator_status": "<1>", "display_status": "&", "reason": "x<y"}],
        "period": {"kind": "weekly"},
        "totals": {},
        "problem": {"code": "nope", "details": {"<k>": "&v"}},
        "url": "javascript:alert(1)",
    }
    for kind in ("call_succeeded", "call_failed", "lead_delayed", "lead_created", "digest", "problem"):
        for locale in ("ru", "en"):
            rendered = render(kind, data, locale, "https://perezvon.example")
            parse_html(rendered.text)  # raises as Telegram would refuse it
            markup = rendered.reply_markup()
            if markup:
                assert markup["inline_keyboard"][0][0]["url"].startswith("https://")
    with pytest.raises(HtmlError):
        parse_html("<b>unclosed")
    with pytest.raises(HtmlError):
        parse_html("a & b")


# --- the bot and its token -------------------------------------------------------------------------------


async def test_the_check_is_get_me_and_the_token_never_shows(perezvon_app, bot, telegram, caplog):
    caplog.set_level(logging.DEBUG)
    assert await telegram.check() == "@perezvon_test_bot"
    wrong = TelegramNotifier(
        {
            **perezvon_app.host.settings_of("telegram"),
            "api_url": bot.url,
            "token": "987654321:WRONG-token-000000000000000",
        },
        perezvon_app.settings,
    )
    with pytest.raises(CheckFailed) as refused:
        await wrong.check()
    assert refused.value.errors == {"token": ["Telegram refused the bot token."]}
    unreachable = TelegramNotifier(
        {**perezvon_app.host.settings_of("telegram"), "token": TOKEN, "api_url": "http://127.0.0.1:9"},
        perezvon_app.settings,
    )
    with pytest.raises(CheckFailed) as down:
        await unreachable.check()
    assert down.value.errors == {"_schema": ["Telegram could not be reached; try again later."]}
    await wrong.api.push.close()
    await unreachable.api.push.close()
    assert TOKEN not in caplog.text and "WRONG-token" not in caplog.text
    assert TOKEN not in repr(telegram) and TOKEN not in str(refused.value)


def test_every_text_has_its_russian_translation():
    with open(LOCALE_DIR / "ru" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh, locale="ru")
    translated = {m.id for m in catalog if m.id and m.string}
    folder = Path(LOCALE_DIR).parent
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"t": None, "N_": None}
    found = {message for _, _, message, _, _ in extract_from_dir(folder, method_map, keywords=keywords)}
    found = {m for m in found if isinstance(m, str)}
    assert found and found <= translated, sorted(found - translated)


async def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
