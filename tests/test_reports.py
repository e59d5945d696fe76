"""Problem alerts and digests (plugins/reports, docs/notifications.md), over the real intake, the simulator,
the callback worker, the database and the mail plugin writing .eml files to an outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import time
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from test_admin_helpers import csrf_of, login, make_user

from perezvon.api import PluginKind, enable_plugin
from perezvon.core.callbacks import WORKERS_KEY
from perezvon.core.models import (
    AccessGrant,
    Attempt,
    Connection,
    Delivery,
    GrantLevel,
    Lead,
    OperatorNumber,
    Project,
    User,
)
from perezvon.core.registry import JobRegistry, Notification, PluginError
from perezvon.core.worker import build_workers
from perezvon.plugins.mail.compose import Composer
from perezvon.plugins.mail.notifier import MailNotifier, Relay
from perezvon.plugins.reports.models import Problem, SentDigest
from perezvon.plugins.reports.reports import check_problems, due_periods, recipients, send_digests
from perezvon.plugins.reports.schemas import ReportsSettings

SETTINGS = ReportsSettings().load({})
FROM = "Perezvon <robot@perezvon.example>"


@pytest.fixture
def outbox(perezvon_app, tmp_path):
    """The registered mail notifier, swapped for one writing to this test's own outbox."""
    notifiers = perezvon_app.host.registry.notifiers
    original = notifiers["mail"]
    composer = Composer(language="ru", public_url="https://perezvon.example", from_address=FROM)
    notifiers["mail"] = MailNotifier(composer, relay=None, outbox_dir=tmp_path / "outbox")
    yield tmp_path / "outbox"
    notifiers["mail"] = original


async def people(site):
    """Who may get a site's reports: a full-access user of its project, one of the site alone, a viewer,
    a full-access user of another project and a staff user without a grant."""
    tag = site.domain.split(".")[0]

    async def user(name, **extra):
        return await User.create(
            phone=f"+7900{abs(hash((tag, name))) % 10**7:07d}", email=f"{name}-{tag}@example.com", **extra
        )

    owner, manager, viewer, stranger, staff = [
        await user(name, **extra)
        for name, extra in (
            ("owner", {}),
            ("manager", {}),
            ("viewer", {}),
            ("stranger", {}),
            ("staff", {"is_staff": True}),
        )
    ]
    await AccessGrant.create(user=owner, project_id=site.project_id, level=GrantLevel.FULL)
    await AccessGrant.create(user=manager, connection=site, level=GrantLevel.FULL)
    await AccessGrant.create(user=viewer, project_id=site.project_id, level=GrantLevel.VIEW)
    other = await Project.create(name="Another company")
    await AccessGrant.create(user=stranger, project=other, level=GrantLevel.FULL)
    return owner, manager, viewer, stranger, staff


def messages(outbox, pattern):
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(outbox.glob(pattern))]


def text_of(message):
    return message.get_body(("plain",)).get_content()


async def post_lead(client, site, phone, **extra):
    response = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_operator_number_failing_three_times_is_alerted_once_to_full_access_users(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, outbox
):
    owner, manager, *_ = await people(perezvon_site)
    # the simulator answers 486 Busy on an operator number ending in 0486 (tests/plugins.toml)
    await OperatorNumber.filter(connection=perezvon_site).update(phone="+74951230486")
    for _ in range(2):
        await post_lead(perezvon_client, perezvon_site, new_phone())
        await perezvon_run_jobs()
    assert await check_problems(perezvon_app, SETTINGS) == {}  # two failures are not yet a problem
    assert not messages(outbox, f"*-problem-{perezvon_site.id}.eml")

    await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    assert (await check_problems(perezvon_app, SETTINGS)).get("operator_failing") == 1
    assert (await check_problems(perezvon_app, SETTINGS)).get("operator_failing") is None  # the same episode
    [message] = messages(outbox, f"*-problem-{perezvon_site.id}.eml")
    assert sorted(message["To"].split(", ")) == sorted([owner.email, manager.email])
    assert message["Subject"] == "Проблема: Номер оператора не отвечает — Test site"
    text = text_of(message)
    assert "Последние 3 попыток дозвониться на номер оператора +7 495 123-04-86 не удались" in text
    assert "486, 486, 486" in text
    assert f"{perezvon_app.settings.public_url.rstrip('/')}/connections/{perezvon_site.id}" in text
    [row] = await Problem.filter(connection_id=perezvon_site.id, code="operator_failing")
    assert row.alerted_at is not None and row.resolved_at is None and row.subject == "+74951230486"

    # the operator answers again: the episode ends; failing again later is a new episode, a new alert
    last = await Attempt.filter(call__connection_id=perezvon_site.id).order_by("-started_at").first()
    await Attempt.filter(id=last.id).update(operator_status=200)
    await check_problems(perezvon_app, SETTINGS)
    await row.refresh_from_db()
    assert row.resolved_at is not None
    assert len(messages(outbox, f"*-problem-{perezvon_site.id}.eml")) == 1


async def test_an_integration_failing_for_an_hour_is_alerted_once(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, outbox
):
    owner, manager, *_ = await people(perezvon_site)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    now = dt.datetime.now(dt.UTC)

    async def failed(minutes_ago, **extra):
        await Delivery.create(
            call_id=created["call_id"],
            integration_key="webhooks",
            event="call_finished",
            ok=False,
            status=503,
            response="503 Service Unavailable",
            **extra,
        )
        await (
            Delivery.filter(call_id=created["call_id"])
            .order_by("-id")
            .limit(1)
            .update(created_at=now - dt.timedelta(minutes=minutes_ago))
        )

    # failing for 50 minutes: not yet
    for minutes in (50, 30, 10):
        await failed(minutes)
    await check_problems(perezvon_app, SETTINGS, now=now)
    assert not messages(outbox, f"*-problem-{perezvon_site.id}.eml")
    # an hour and more: one alert, however often it is checked
    await failed(65)
    for _ in range(2):
        await check_problems(perezvon_app, SETTINGS, now=now)
    [message] = messages(outbox, f"*-problem-{perezvon_site.id}.eml")
    assert sorted(message["To"].split(", ")) == sorted([owner.email, manager.email])
    text = text_of(message)
    assert "Все передачи в" in text and "попыток: 4" in text and "503 Service Unavailable" in text
    [row] = await Problem.filter(connection_id=perezvon_site.id, code="deliveries_failing")
    assert row.subject == "webhooks" and row.details["failures"] == 4


async def test_a_daily_digest_counts_by_source_and_channel_and_is_sent_once(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, outbox
):
    owner, manager, viewer, *_ = await people(perezvon_site)
    # the manager wants the weekly digest only: the daily one goes to the owner alone
    manager.preferences = {"reports": {"connections": {str(perezvon_site.id): {"digest": "weekly"}}}}
    await manager.save()
    await enable_plugin(perezvon_site, PluginKind.APPLICATION, "widget")
    await post_lead(perezvon_client, perezvon_site, new_phone(), source="widget", utm={"utm_medium": "cpc"})
    await post_lead(perezvon_client, perezvon_site, new_phone("0486"), source="widget")
    await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    leads = await Lead.filter(connection_id=perezvon_site.id).prefetch_related("call")
    assert len(leads) == 3
    handled = {str(lead.id): lead.call.display_status == "successful" for lead in leads}
    assert sum(handled.values()) == 2  # the client ending in 0486 was busy

    tz = ZoneInfo(perezvon_site.timezone)
    tomorrow = dt.datetime.now(tz).date() + dt.timedelta(days=1)
    before_the_hour = dt.datetime.combine(tomorrow, dt.time(8, 59), tzinfo=tz)
    assert await send_digests(perezvon_app, SETTINGS, now=before_the_hour) == 0
    at_ten = dt.datetime.combine(tomorrow, dt.time(10, 0), tzinfo=tz)
    await send_digests(perezvon_app, SETTINGS, now=at_ten)
    await send_digests(perezvon_app, SETTINGS, now=at_ten + dt.timedelta(minutes=5))  # the job runs again
    sent = messages(outbox, f"*-digest-{perezvon_site.id}.eml")
    [message] = [m for m in sent if m["To"] == owner.email]
    # on a Monday the manager's weekly digest goes out as well (the leads are in its week too)
    assert [m["To"] for m in sent if m is not message] == ([manager.email] if tomorrow.weekday() == 0 else [])
    text = text_of(message)
    assert "Звонков: 3" in text and "Обработано: 2" in text and "Потеряно: 0" in text
    by_source = {lead.source: [0, 0] for lead in leads}
    by_channel = {lead.channel: [0, 0] for lead in leads}
    for lead in leads:
        for table, key in ((by_source, lead.source), (by_channel, lead.channel)):
            table[key][0] += 1
            table[key][1] += handled[str(lead.id)]
    assert by_source == {"widget": [2, 1], "api": [1, 1]}
    assert "  Виджет обратного звонка: 2 / 1" in text
    assert "  API: 1 / 1" in text
    [row] = await SentDigest.filter(connection_id=perezvon_site.id, period="daily")
    assert row.sent_at is not None and row.period_start == tomorrow - dt.timedelta(days=1)
    assert "mail" in row.notifiers and row.recipients == [owner.email]
    assert f"dashboard?connection={perezvon_site.id}&date_from={row.period_start}" in text
    assert by_channel == {"direct": [3, 2]}
    assert "  прямой заход: 3 / 2" in text


def test_the_periods_due_follow_the_site_clock():
    tz = ZoneInfo("Asia/Yekaterinburg")
    monday = dt.datetime(2026, 12, 7, 9, 0, tzinfo=tz)
    due = {kind: (start.date(), end.date()) for kind, start, end in due_periods(monday, tz, 9)}
    assert due == {
        "daily": (dt.date(2026, 12, 6), dt.date(2026, 12, 7)),
        "weekly": (dt.date(2026, 11, 30), dt.date(2026, 12, 7)),
    }
    assert due_periods(monday - dt.timedelta(minutes=1), tz, 9) == []


DIGEST_DATA = {
    "connection": {"id": 7, "domain": "shop.example", "name": "Магазин", "timezone": "Europe/Moscow"},
    "period": {"kind": "daily", "from": "2026-12-03T00:00:00+03:00", "to": "2026-12-04T00:00:00+03:00"},
    "totals": {"calls": 12, "handled": 9, "lost": 1},
    "by_source": [{"source": "widget", "title": "Widget", "calls": 10, "handled": 8}],
    "by_channel": [{"channel": "ads", "calls": 12, "handled": 9}],
    "dashboard_url": "https://perezvon.example/dashboard?connection=7",
}
PROBLEM_DATA = {
    "connection": None,
    "problem": {"code": "telephony_unreachable", "details": {"reason": "AMI login refused"}},
    "url": "https://perezvon.example/healthz",
}


@pytest.mark.parametrize(
    ("language", "digest_subject", "digest_line", "problem_subject", "problem_line"),
    [
        (
            "ru",
            "Сводка звонков за 3 декабря 2026 — Магазин",
            "Обработано: 9",
            "Проблема: Телефония недоступна",
            "Телефония сообщает: AMI login refused",
        ),
        (
            "en",
            "Calls digest for 3 December 2026 — Магазин",
            "Handled: 9",
            "Problem: Telephony is unreachable",
            "The backend says: AMI login refused",
        ),
    ],
)
def test_digest_and_problem_texts_in_each_language(
    language, digest_subject, digest_line, problem_subject, problem_line
):
    composer = Composer(language=language, public_url="https://perezvon.example", from_address=FROM)
    digest = composer.render(
        Notification(kind="digest", recipients=("a@example.com",), subject_id="7", data=DIGEST_DATA)
    )
    assert digest.subject == digest_subject
    assert digest_line in digest.text and "https://perezvon.example/p/reports/preferences" in digest.text
    assert 'href="https://perezvon.example/dashboard?connection=7"' in digest.html
    problem = composer.render(
        Notification(kind="problem", recipients=("a@example.com",), subject_id="", data=PROBLEM_DATA)
    )
    assert problem.subject == problem_subject
    assert problem_line in problem.text and problem_line in problem.html
    if language == "en":  # one language at a time: nothing Russian on an English message but the site's name
        cyrillic = [ch for ch in (digest.text + problem.text).replace("Магазин", "") if "а" <= ch.lower() <= "я"]
        assert not cyrillic


# --- telephony, a failing relay, the preferences page, the worker -----------------------------------------


async def test_telephony_unreachable_is_alerted_to_the_staff_after_a_while(perezvon_app, perezvon_site, outbox):
    owner, manager, viewer, stranger, staff = await people(perezvon_site)
    beat = {"worker": "reports-test", "at": time.time(), "backend": "asterisk", "telephony": "AMI login refused"}
    await perezvon_app.redis.hset(WORKERS_KEY, "reports-test", json.dumps(beat))
    try:
        now = dt.datetime.now(dt.UTC)
        await check_problems(perezvon_app, SETTINGS, now=now)  # seen: the episode opens, no alert yet
        assert not messages(outbox, "*-problem-_.eml")
        await check_problems(perezvon_app, SETTINGS, now=now + dt.timedelta(minutes=4))
        await check_problems(perezvon_app, SETTINGS, now=now + dt.timedelta(minutes=5))
        [message] = messages(outbox, "*-problem-_.eml")
        to = message["To"].split(", ")
        assert staff.email in to and owner.email not in to and manager.email not in to
        assert message["Subject"] == "Проблема: Телефония недоступна"
        assert "Телефония сообщает: AMI login refused" in text_of(message)
    finally:
        await perezvon_app.redis.hdel(WORKERS_KEY, "reports-test")
    await check_problems(perezvon_app, SETTINGS)
    assert not await Problem.filter(code="telephony_unreachable", resolved_at=None).exists()


class RelayOnceDown:
    """A real SMTP server (aiosmtpd) that answers the first message with 451 and accepts the next ones."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.refusals = 1

    async def handle_DATA(self, server, session, envelope):
        if self.refusals:
            self.refusals -= 1
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


async def test_a_relay_that_fails_is_tried_again_at_the_next_run_without_a_second_copy(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, tmp_path
):
    owner, manager, *_ = await people(perezvon_site)
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    now = dt.datetime.now(dt.UTC)
    await Delivery.create(call_id=created["call_id"], integration_key="calltouch", event="lead_created", ok=False)
    await Delivery.filter(call_id=created["call_id"]).update(created_at=now - dt.timedelta(minutes=90))
    sink = RelayOnceDown()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(sink, hostname="sink.test"), "127.0.0.1", 0
    )
    notifiers = perezvon_app.host.registry.notifiers
    original = notifiers["mail"]
    composer = Composer(language="en", public_url="https://perezvon.example", from_address=FROM)
    relay = Relay(host="127.0.0.1", port=server.sockets[0].getsockname()[1], security="none", timeout=5)
    notifiers["mail"] = MailNotifier(composer, relay=relay, outbox_dir=tmp_path / "outbox")
    try:
        await check_problems(perezvon_app, SETTINGS, now=now)
        [row] = await Problem.filter(connection_id=perezvon_site.id, code="deliveries_failing")
        assert row.alerted_at is None and "mail" not in row.notifiers and not sink.envelopes  # 451: not sent yet
        await check_problems(perezvon_app, SETTINGS, now=now + dt.timedelta(minutes=1))
        await check_problems(perezvon_app, SETTINGS, now=now + dt.timedelta(minutes=2))
    finally:
        notifiers["mail"] = original
        server.close()
        await server.wait_closed()
    [envelope] = sink.envelopes
    assert sorted(envelope.rcpt_tos) == sorted([owner.email, manager.email])
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Problem: Deliveries to an integration are failing — Test site"
    await row.refresh_from_db()
    assert row.alerted_at is not None and "mail" in row.notifiers


async def test_each_user_switches_digests_and_alerts_on_the_preferences_page(
    perezvon_app, perezvon_client, perezvon_site
):
    anonymous = await perezvon_client.get("/p/reports/preferences")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    owner = await make_user(level=GrantLevel.FULL, project=await perezvon_site.project)
    await login(perezvon_client, owner)
    page = await perezvon_client.get(
        f"/p/reports/preferences?connection={perezvon_site.id}", headers={"Accept-Language": "en"}
    )
    assert page.status_code == 200 and "Digests and alerts" in page.text and "Сводк" not in page.text
    csrf = csrf_of(page.text)
    refused = await perezvon_client.post(
        f"/p/reports/preferences?connection={perezvon_site.id}", data={"digest": "off", "csrf_token": "forged"}
    )
    assert refused.status_code == 403
    bad = await perezvon_client.post("/p/reports/preferences", data={"digest": "hourly", "csrf_token": csrf})
    assert bad.status_code == 422 and "Выберите, как часто присылать сводку." in bad.text
    saved = await perezvon_client.post(
        f"/p/reports/preferences?connection={perezvon_site.id}", data={"digest": "weekly", "csrf_token": csrf}
    )
    assert saved.status_code == 200 and "Сохранено." in saved.text
    await owner.refresh_from_db()
    assert owner.preferences["reports"] == {
        "connections": {str(perezvon_site.id): {"digest": "weekly", "alerts": False}}
    }
    assert await recipients(perezvon_site.id, digest="weekly", default_digest="daily") == (owner.email,)
    assert await recipients(perezvon_site.id, digest=None, default_digest="daily") == ()
    other = await Project.create(name="Not theirs")
    elsewhere = await Connection.create(project=other, domain=f"x-{perezvon_site.domain}")
    assert (await perezvon_client.get(f"/p/reports/preferences?connection={elsewhere.id}")).status_code == 404


def test_the_checks_run_on_their_own_in_the_deliveries_worker(perezvon_app):
    workers = build_workers(perezvon_app)
    crons = {job.name: job for job in workers.deliveries.cron_jobs}
    assert crons["reports.check_problems"].minute == set(range(60))
    assert crons["reports.send_digests"].minute == set(range(0, 60, 5))
    assert not {job.name for job in workers.callbacks.cron_jobs} & set(crons)
    with pytest.raises(PluginError, match="every_minutes must divide 60"):
        JobRegistry("x", {}).add("y", check_problems, every_minutes=7)
