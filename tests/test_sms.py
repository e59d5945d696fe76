"""The SMS plugin against local HTTP services that answer as SMS.ru, SMSC and a generic gateway do.

:class:`Providers` (tests/sms_emulator.py) is one real HTTP/1.1 server on 127.0.0.1 with three endpoints, each following
its provider's documented request shape, authentication and error answers (docs/sms.md):

* ``POST /sms/send`` -- SMS.ru: form ``api_id``, ``to``, ``msg``, ``json=1``; a wrong ``api_id`` is
  ``{"status": "ERROR", "status_code": 200}``, a wrong number is per-number status 202, and a
  scripted code (201 no money, 220 "try later") can be forced;
* ``POST /sys/send.php`` -- SMSC: form ``login``, ``psw``, ``phones``, ``mes``, ``fmt=3``,
  ``charset=utf-8``; a wrong login is ``{"error": ..., "error_code": 2}``, a wrong phone 7, and a
  scripted code (9 "too many identical requests", 3 no money) can be forced;
* ``GET|POST /gw/send?to=..&text=..`` -- a gateway wanting ``Authorization: Bearer <token>``
  (401 without it), with scripted statuses (503).
"""

from __future__ import annotations

import json
import re
import time
from zoneinfo import ZoneInfo

import pytest
from arq.constants import in_progress_key_prefix
from sms_emulator import GATEWAY_TOKEN, SMSC_LOGIN, SMSC_PASSWORD, SMSRU_KEY, Providers

from perezvon.api import CheckFailed, DeliveryError, HttpPush, Notification
from perezvon.core import enablement
from perezvon.core.i18n import plugin_gettext, plugin_locale_dir
from perezvon.core.jobs import deliver
from perezvon.core.models import Call, Delivery, NotificationRecipient, User
from perezvon.core.queue import QUEUES
from perezvon.plugins.sms.followup import SmsFollowUp
from perezvon.plugins.sms.models import SentSms, SmsRecipient
from perezvon.plugins.sms.notifier import SmsNotifier
from perezvon.plugins.sms.providers import DeploymentSettings, provider_for


@pytest.fixture
async def providers():
    async with Providers() as running:
        yield running


@pytest.fixture(autouse=True)
async def no_jobs_left_behind(perezvon_app):
    yield
    redis = perezvon_app.redis
    stale = [key async for key in redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:
        await redis.delete(*stale)


async def make_deferred_deliveries_due(redis, call_id: str) -> int:
    """Bring the retries of one call's deliveries forward to now (not its redials: those stay in the
    future; nor other tests' retries, which would fall due in this test's worker run)."""
    now = int(time.time() * 1000)
    moved = 0
    for queue in QUEUES:
        for job_id in await redis.zrangebyscore(queue, now, "+inf"):
            if job_id.decode().startswith("deliver:") and f":{call_id}" in job_id.decode():
                await redis.zadd(queue, {job_id: now})
                await redis.delete(in_progress_key_prefix + job_id.decode())
                moved += 1
    return moved


async def post_lead(client, site, phone, **extra):
    response = await client.post(
        "/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, "source": "widget", **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def enable_sms(connection, **settings):
    for app in ("widget", "leadgen"):  # the site apps whose leads carry the visitor's consent
        await enablement.enable(connection, enablement.APPLICATION, app)
    loaded = SmsFollowUp.settings_schema().load(settings)
    return await enablement.enable(connection, enablement.INTEGRATION, "sms", loaded)


def smsc(providers: Providers) -> dict[str, str]:
    return {"provider": "smsc", "login": SMSC_LOGIN, "password": SMSC_PASSWORD, "base_url": providers.url}


def smsru(providers: Providers) -> dict[str, str]:
    return {"provider": "smsru", "api_id": SMSRU_KEY, "base_url": providers.url}


def gateway(providers: Providers) -> dict[str, str]:
    return {
        "provider": "generic",
        "gateway_url": providers.url + "/gw/send?to={phone}&text={text}",
        "gateway_auth": "header",
        "header_value": f"Bearer {GATEWAY_TOKEN}",
    }


def cyrillic(text: str) -> bool:
    return any("а" <= ch <= "я" for ch in text.lower())


# --- the visitor's follow-up ----------------------------------------------------------------


async def test_a_failed_attempt_sends_one_follow_up_with_the_next_attempt_time_even_when_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers, caplog
):
    perezvon_site.timezone = "Asia/Yekaterinburg"
    await perezvon_site.save()
    await enable_sms(perezvon_site, **smsc(providers), company="Автосалон Восток")
    providers.forced = [9]  # SMSC: "too many identical requests" -- try later
    phone = new_phone("0486")  # the client is busy: a redial in 3 minutes
    created = await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()

    call = await Call.get(id=created["call_id"])
    assert call.state == "scheduled" and call.attempts_made == 1
    first = await Delivery.get(call_id=call.id, integration_key="sms", event="attempt_finished")
    assert (first.ok, first.try_number) == (False, 1) and first.next_try_at is not None
    assert "9" in first.response and providers.sent == []

    assert await make_deferred_deliveries_due(perezvon_app.redis, created["call_id"]) == 1
    await perezvon_run_jobs()
    assert len(providers.sent) == 1
    kind, to, text = providers.sent[0]
    when = call.next_attempt_at.astimezone(ZoneInfo("Asia/Yekaterinburg")).strftime("%H:%M")
    assert (kind, to) == ("smsc", phone.lstrip("+"))
    assert text.startswith(f"Мы не смогли до вас дозвониться, перезвоним в {when}. Автосалон Восток")
    token = (await SmsRecipient.get(connection_id=perezvon_site.id, phone=phone)).token
    assert text.endswith(f"Отписаться: {perezvon_app.settings.public_url.rstrip('/')}/p/sms/stop/{token}")
    # the same delivery again (a duplicate event, a job run twice after a lost record): nothing more
    await Delivery.filter(call_id=call.id, integration_key="sms").delete()
    outcome = await deliver({"perezvon": perezvon_app}, "sms", "attempt_finished", str(call.id), 1)
    assert outcome == "delivered" and len(providers.sent) == 1
    assert (await SentSms.get(key=f"followup:{call.id}")).state == "sent"
    assert SMSC_PASSWORD not in "\n".join(r.getMessage() for r in caplog.records)


async def test_the_business_card_follows_a_successful_call_once_per_period(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers
):
    await enable_sms(perezvon_site, **smsru(providers), phone="+7 495 123-45-67", opt_out_link=False)
    phone = new_phone()
    created = await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()
    assert (await Call.get(id=created["call_id"])).display_status == "successful"
    assert providers.sent == [
        ("smsru", phone.lstrip("+"), f"Спасибо за звонок! Test company, {perezvon_site.domain}, +7 495 123-45-67")
    ]
    method, path, _, params = providers.requests[0]
    assert (method, path, params["json"], params["api_id"]) == ("POST", "/sms/send", "1", SMSRU_KEY)

    await perezvon_app.redis.delete(f"pv:dup:{perezvon_site.id}:{phone}")  # past the intake's duplicate window
    second = await post_lead(perezvon_client, perezvon_site, phone, name="again")  # another call, same number
    await perezvon_run_jobs()
    row = await Delivery.get(call_id=second["call_id"], integration_key="sms", event="call_finished")
    assert row.ok and "recently" in row.response
    assert len(providers.sent) == 1


async def test_english_texts_and_an_own_template(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers
):
    await enable_sms(
        perezvon_site,
        **gateway(providers),
        language="en",
        company="East Motors",
        site="east.example",
        card_template="Hi from {company}: {site}",
    )
    phone, other = new_phone("0486"), new_phone()
    await post_lead(perezvon_client, perezvon_site, phone)
    await post_lead(perezvon_client, perezvon_site, other)
    await perezvon_run_jobs()
    texts = {to: text for kind, to, text in providers.sent if kind == "gateway"}
    assert re.fullmatch(
        r"We could not reach you, we will call you back at \d\d:\d\d\. East Motors Unsubscribe: http\S+/p/sms/stop/\S+",
        texts[phone.lstrip("+")],
    )
    assert re.fullmatch(r"Hi from East Motors: east.example Unsubscribe: http\S+", texts[other.lstrip("+")])
    method, path, headers, _ = providers.requests[0]
    assert (method, path, headers["authorization"]) == ("GET", "/gw/send", f"Bearer {GATEWAY_TOKEN}")


async def test_no_sms_without_consent(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers):
    await enable_sms(perezvon_site, **smsc(providers))
    api_lead = await post_lead(perezvon_client, perezvon_site, new_phone(), source="api")
    said_no = await post_lead(perezvon_client, perezvon_site, new_phone(), extra={"sms_consent": False})
    await perezvon_run_jobs()
    for created in (api_lead, said_no):
        row = await Delivery.get(call_id=created["call_id"], integration_key="sms", event="call_finished")
        assert row.ok and row.response == "skipped: no consent to messages"
    assert providers.sent == [] and providers.requests == []


async def test_an_opted_out_number_gets_nothing(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers
):
    await enable_sms(perezvon_site, **smsc(providers))
    phone = new_phone()
    await post_lead(perezvon_client, perezvon_site, phone)
    await perezvon_run_jobs()
    ((_, _, text),) = providers.sent
    # no company phone set and none shown on the site: no dangling comma
    assert text.startswith(f"Спасибо за звонок! Test company, {perezvon_site.domain} Отписаться: http")
    link = re.search(r"(/p/sms/stop/[\w-]+)$", text).group(1)

    page = await perezvon_client.get(link, headers={"Accept-Language": "ru"})
    assert page.status_code == 200 and "Вы отписаны" in page.text and phone[-4:] in page.text
    assert phone not in page.text  # only the number's end
    page = await perezvon_client.get(link, headers={"Accept-Language": "en-GB,en;q=0.9"})  # again: still fine
    assert page.status_code == 200 and "You are unsubscribed" in page.text and not cyrillic(page.text)
    unknown = await perezvon_client.get("/p/sms/stop/notAtokenAtAll")
    assert unknown.status_code == 404 and "Ссылка не найдена" in unknown.text

    await perezvon_app.redis.delete(f"pv:dup:{perezvon_site.id}:{phone}")  # past the intake's duplicate window
    failed = await post_lead(perezvon_client, perezvon_site, phone, name="later", source="leadgen")
    await perezvon_run_jobs()
    row = await Delivery.get(call_id=failed["call_id"], integration_key="sms", event="call_finished")
    assert row.response == "skipped: the number unsubscribed"
    assert len(providers.sent) == 1


async def test_a_permanent_provider_error_is_stored_once_and_not_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers
):
    await enable_sms(perezvon_site, **smsru(providers))
    providers.forced = [201]  # SMS.ru: not enough money
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_deliveries_due(perezvon_app.redis, created["call_id"])
    await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="sms")
    assert [(r.ok, r.next_try_at) for r in rows] == [(False, None)]
    assert "201" in rows[0].response and SMSRU_KEY not in rows[0].response
    assert len(providers.requests) == 1 and providers.sent == []


async def test_provider_errors_map_to_retry_or_not_without_secrets(providers):
    http = HttpPush()
    cases = [
        ({**smsru(providers), "api_id": "WRONG-KEY"}, [], "+79161234567", False, "200 wrong api_id"),
        (smsru(providers), [220], "+79161234567", True, "220"),
        (smsru(providers), [], "+12025550123", False, "202 wrong phone number"),
        ({**smsc(providers), "password": "bad-password"}, [], "+79161234567", False, "2 wrong login"),
        (smsc(providers), [4], "+79161234567", True, "4 the IP address is blocked"),
        (smsc(providers), [3], "+79161234567", False, "3 not enough money"),
        ({**gateway(providers), "header_value": "Bearer nope"}, [], "+79161234567", False, "401"),
        (gateway(providers), [503], "+79161234567", True, "503"),
        ({**smsru(providers), "base_url": "http://127.0.0.1:9"}, [], "+79161234567", True, "network error"),
    ]
    for settings, forced, phone, retry, words in cases:
        providers.forced = list(forced)
        with pytest.raises(DeliveryError) as raised:
            await provider_for(DeploymentSettings().load(settings), http).send(phone, "Тест")
        shown = f"{raised.value} {raised.value.response}"
        assert raised.value.retry is retry, (settings["provider"], forced, shown)
        assert words in shown, shown
        for secret in (SMSRU_KEY, SMSC_PASSWORD, "bad-password", "WRONG-KEY", GATEWAY_TOKEN, "nope"):
            assert secret not in shown
    providers.forced = []
    basic = {
        "provider": "generic",
        "gateway_method": "POST",
        "gateway_url": providers.url + "/gw/basic?to={phone}&text={text}",
        "gateway_auth": "basic",
        "login": SMSC_LOGIN,
        "password": SMSC_PASSWORD,
    }
    assert (await provider_for(DeploymentSettings().load(basic), http).send("+79161234567", "Да & нет")).startswith(
        "202"
    )
    assert providers.requests[-1][0] == "POST" and providers.sent[-1] == ("gateway", "79161234567", "Да & нет")
    with pytest.raises(DeliveryError) as raised:
        await provider_for(DeploymentSettings().load({**basic, "password": "wrong"}), http).send("+79161234567", "x")
    assert raised.value.retry is False and raised.value.status == 401
    answer = await provider_for(DeploymentSettings().load(smsc(providers)), http).send("+79161234567", "Привет")
    assert answer.startswith('200 {"id"')
    assert providers.sent[-1] == ("smsc", "79161234567", "Привет")
    await http.close()


# --- operators' alerts ------------------------------------------------------------------------


async def test_the_notifier_texts_users_with_a_phone_on_record_once(perezvon_app, perezvon_site, providers, new_phone):
    operator = new_phone()
    await User.create(phone=operator, email="Operator@Example.com")
    settings = DeploymentSettings().load({**smsc(providers), "alerts": True})
    notifier = SmsNotifier(settings)
    assert SMSC_PASSWORD not in repr(notifier)
    notification = Notification(
        kind="call_failed",
        recipients=("operator@example.com", "nobody@example.com"),
        subject_id="call-1-" + operator,
        data={"connection": {"id": perezvon_site.id, "domain": "shop.example"}, "lead": {"phone": "+7 916 ***-**-67"}},
    )
    providers.forced = [9]  # try later: the core's job retries the notification
    with pytest.raises(DeliveryError) as raised:
        await notifier.send(notification)
    assert raised.value.retry
    await notifier.send(notification)
    await notifier.send(notification)  # a retried job: nothing twice
    assert providers.sent == [
        (
            "smsc",
            operator.lstrip("+"),
            "Обратный звонок не состоялся: +7 916 ***-**-67, shop.example. Перезвоните посетителю",
        )
    ]
    assert "sms" in perezvon_app.host.registry.integrations


async def test_call_results_reach_a_recipient_with_a_phone_through_the_core_job(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, providers
):
    """The core's own notification job, with the notifier registered as ``alerts = true`` does: the
    recipient's user has no access to the site's contacts, so the client's number reaches them masked."""
    operator, client = new_phone(), new_phone()
    email = f"duty-{operator[-7:]}@example.com"
    await User.create(phone=operator, email=email.upper())
    await NotificationRecipient.create(connection=perezvon_site, email=email)
    await NotificationRecipient.create(connection=perezvon_site, email="mailbox-only@example.com")
    registry = perezvon_app.host.registry
    registry.notifiers["sms"] = SmsNotifier(DeploymentSettings().load({**smsc(providers), "alerts": True}))
    try:
        await post_lead(perezvon_client, perezvon_site, client, source="api")  # no follow-up here: not on
        await perezvon_run_jobs()
    finally:
        del registry.notifiers["sms"]
    ((kind, to, text),) = providers.sent
    assert (kind, to) == ("smsc", operator.lstrip("+"))
    assert text.startswith("Обратный звонок состоялся: ") and text.endswith(f", {perezvon_site.domain}")
    assert client not in text and client[-2:] in text  # masked: the recipient may not see the contacts


def test_alerts_need_a_provider():
    errors = DeploymentSettings().validate({"alerts": True})
    assert errors == {"alerts": ["Alerts by SMS need a provider."]}


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, field, english",
    [
        ({"provider": "smsru"}, "api_id", "SMS.ru needs its API key (api_id)."),
        ({"provider": "smsc", "login": "x"}, "password", "SMSC needs the login and the password."),
        ({"provider": "generic"}, "gateway_url", "The gateway needs a URL template with {phone} and {text}."),
        (
            {"provider": "generic", "gateway_url": "https://gw.example/?to={number}"},
            "gateway_url",
            "Only {phone} and {text} may stand in braces.",
        ),
        ({"base_url": "sms.ru"}, "base_url", "An address starting with https://, e.g. https://sms.ru."),
        (
            {"failed_template": "Перезвоним в {hour}"},
            "failed_template",
            "Only {company}, {site}, {phone} and {time} may stand in braces.",
        ),
        (
            {"card_template": "{company"},
            "card_template",
            "Only {company}, {site}, {phone} and {time} may stand in braces.",
        ),
    ],
)
def test_settings_errors_in_russian_and_english(perezvon_app, data, field, english):
    integration = perezvon_app.host.registry.integrations["sms"]
    errors = integration.settings_schema().validate(data)
    assert errors[field] == [english]
    russian = plugin_gettext(integration, english, "ru")
    assert cyrillic(russian) and russian != english
    assert plugin_gettext(integration, english, "en") == english


def test_the_settings_page_has_texts_in_both_languages_and_secrets_are_masked(perezvon_app):
    integration = perezvon_app.host.registry.integrations["sms"]
    assert perezvon_app.host.registry.owner[("integration", "sms")] == "sms"
    assert plugin_locale_dir(integration).parts[-3:] == ("plugins", "sms", "locales")
    schema = integration.settings_schema()
    texts = [integration.title, integration.summary, integration.description]
    for field in schema.fields.values():
        texts += [field.metadata["label"], *([field.metadata["help"]] if field.metadata.get("help") else [])]
        texts += [label for label in getattr(field.validate, "labels", ()) or () if label not in ("SMS.ru", "SMSC")]
    for text in texts:
        assert not cyrillic(text), text
        assert plugin_gettext(integration, text, "ru") != text or text in ("sms.ru → API", "GET or POST"), text
    secret = sorted(name for name, field in schema.fields.items() if field.metadata.get("secret"))
    assert secret == ["api_id", "header_value", "password"]
    masked = enablement.mask_secrets(integration, schema.load({"provider": "smsru", "api_id": SMSRU_KEY}))
    assert SMSRU_KEY not in json.dumps(masked)


async def test_the_check_reads_the_balance_and_blames_the_right_field(perezvon_app, providers):
    integration = perezvon_app.host.registry.integrations["sms"]
    load = integration.settings_schema().load
    with pytest.raises(CheckFailed) as refused:  # the test deployment has no provider
        await integration.check(load({}))
    assert list(refused.value.errors) == ["provider"]
    await integration.check(load(smsc(providers)))
    await integration.check(load(smsru(providers)))
    await integration.check(load(gateway(providers)))  # a gateway has nothing documented to ask
    for settings, field in (
        ({**smsc(providers), "password": "wrong"}, "password"),
        ({**smsru(providers), "api_id": "WRONG"}, "api_id"),
    ):
        with pytest.raises(CheckFailed) as refused:
            await integration.check(load(settings))
        assert list(refused.value.errors) == [field]
        message = refused.value.errors[field][0]
        assert cyrillic(plugin_gettext(integration, message, "ru")) and not cyrillic(message)
    paths = [path for _, path, _, _ in providers.requests]
    assert paths == ["/sys/balance.php", "/my/balance", "/sys/balance.php", "/my/balance"]
    assert providers.sent == []
