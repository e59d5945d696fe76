"""The mail plugin: templates in both languages, a real SMTP sink, the outbox, hostile input, the core's jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import gc
import logging
import re
import socket
import stat
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, LoginPassword
from arq import Retry
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from perezvon.core import jobs
from perezvon.core.callbacks import event_field_names
from perezvon.core.models import Attempt, Call, Connection, Lead, NotificationRecipient, Office
from perezvon.core.plugins import PluginHost
from perezvon.core.registry import DeliveryError, Notification, PluginError
from perezvon.plugins.mail import plugin as mail_plugin
from perezvon.plugins.mail.compose import LOCALE_DIR, Composer, NotificationDataError
from perezvon.plugins.mail.demo import DEMO_RECIPIENT
from perezvon.plugins.mail.notifier import MailNotifier, Relay

FROM = "Perezvon <robot@perezvon.example>"
EVERY_REDIAL_AT_ONCE = {
    "operator_first": {str(n): {"*-*": {"period": 0, "direction": "operator_first"}} for n in range(2, 6)}
}
PLUGIN_DIR = Path(mail_plugin.__file__).parent


# --- sample data, shaped exactly like perezvon.core.callbacks.as_event_data ----------------------------------


def sample_connection(**changes):
    return {
        "id": 7,
        "kind": "site",
        "domain": "cars.example",
        "extra_domains": [],
        "name": "Автосалон «Север»",
        "specialization": "",
        "timezone": "Asia/Yekaterinburg",
        "is_on": True,
        "token": "t" * 32,
        "timer_seconds": 36,
        "offhours_spread_seconds": 300,
        "target_call_seconds": 120,
        "unique_window_days": 30,
        "session_minutes": 45,
        "session_gap_minutes": 15,
        "schedule": {},
        "convenient_time": "10:00",
        "offices_enabled": False,
        "offices_required": False,
        "offices_title": "",
        "departments_enabled": False,
        "departments_required": False,
        "departments_title": "",
        "telephony": {},
        "redial_matrix": {},
        "announcements": {},
        "recording_retention_days": None,
        "line_strategy": "hunt",
        "line_wait_seconds": 300,
        "created_at": "2026-01-01T00:00:00+00:00",
        **changes,
    }


def sample_lead(**changes):
    return {
        "id": str(uuid.uuid4()),
        "source": "api",
        "phone": "+79123456789",
        "name": "Иван Петров",
        "preferred_at": None,
        "page_url": "https://cars.example/models/x5?utm_source=yandex",
        "referrer": "https://yandex.ru/search/?text=x5",
        "utm_source": "yandex",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_content": "",
        "utm_term": "",
        "channel": "ads",
        "visitor_id": "v1",
        "visit": {},
        "displayed_phone": "",
        "extra": {},
        "client_ip": "203.0.113.5",
        "created_at": "2026-03-12T09:05:09+00:00",
        **changes,
    }


def sample_call(**changes):
    return {
        "id": str(uuid.uuid4()),
        "created_at": "2026-03-12T09:05:09+00:00",
        "state": "finished",
        "display_status": "successful",
        "reason": "the callback took place",
        "first_direction": "operator_first",
        "attempts_made": 1,
        "next_attempt_at": None,
        "next_direction": None,
        "operator_number": "+74951234567",
        "duration_seconds": 130,
        "is_unique": True,
        "is_target": True,
        "recording": "",
        "finished_at": "2026-03-12T09:07:40+00:00",
        **changes,
    }


def sample_attempt(number, operator, client, display, reason, direction="operator_first", talk=0):
    return {
        "id": str(uuid.uuid4()),
        "number": number,
        "direction": direction,
        "operator_number": "+74951234567",
        "backend": "simulator",
        "started_at": f"2026-03-12T09:0{number}:00+00:00",
        "dialled_at": None,
        "ended_at": None,
        "operator_status": operator,
        "client_status": client,
        "duration_seconds": talk,
        "display_status": display,
        "reason": reason,
        "recording": "",
        "recording_bytes": 0,
    }


def call_data(kind="call_succeeded", lead=None, connection=None):
    if kind == "call_succeeded":
        call = sample_call()
        attempts = [sample_attempt(1, 200, 200, "successful", "the callback took place", talk=130)]
    else:
        call = sample_call(
            display_status="unsuccessful",
            attempts_made=3,
            duration_seconds=0,
            is_target=False,
            reason="the subscriber could not be reached in time: busy",
        )
        attempts = [
            sample_attempt(1, 486, None, "failed", "operator number: busy"),
            sample_attempt(2, 200, 203, "unsuccessful", "client's voicemail answered", direction="client_first"),
            sample_attempt(3, 200, 486, "unsuccessful", "the subscriber could not be reached in time: busy"),
        ]
    return {
        "connection": connection or sample_connection(),
        "lead": lead or sample_lead(),
        "call": call,
        "attempts": attempts,
        "office": {"id": 3, "name": "Офис на Тверской"},
        "department": None,
    }


def other_kind_data(kind):
    return {
        "lead_delayed": {
            "connection": sample_connection(),
            "lead": sample_lead(),
            "call": {"id": "c-42"},
            "delay_seconds": 90,
            "office": None,
            "department": None,
        },
        "activation": {
            "user": {"first_name": "Ирина", "phone": "+79160001122", "email": "irina@example.com"},
            "link": "https://perezvon.example/activate/Zm9v",
            "expires_at": "2026-03-14T09:00:00+00:00",
        },
        "site_snippet": {
            "connection": sample_connection(),
            "snippet": '<script async src="//perezvon.example/inject?token=abc"></script>',
            "instructions_url": "https://perezvon.example/help/snippet",
        },
    }[kind]


def notification(kind, data, recipients=("manager@example.com",), subject_id=None):
    return Notification(
        kind=kind,
        recipients=tuple(recipients),
        data=data,
        subject_id=subject_id or str((data.get("call") or {}).get("id") or 11),
    )


def composer(language="ru"):
    return Composer(language=language, public_url="https://perezvon.example", from_address=FROM)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def bodies(message):
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return text, html


# --- an SMTP sink: a real aiosmtpd server in the test's event loop -------------------------------


class Sink:
    """Captures what a relay would receive; can refuse recipients or the message, and check a login."""

    def __init__(self) -> None:
        self.envelopes = []
        self.refuse_recipients: dict[str, str] = {}
        self.data_answer: str | None = None
        self.logins: list[tuple[bytes, bytes]] = []
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse_recipients:
            return self.refuse_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_answer:
            return self.data_answer
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            if (auth_data.login, auth_data.password) == (b"robot", b"s3cret"):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def messages(self):
        return [parse(envelope.content) for envelope in self.envelopes]


@pytest.fixture
async def smtp_sink():
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPServer(sink, hostname="sink.test", authenticator=sink.authenticate, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    sink.port = server.sockets[0].getsockname()[1]
    yield sink
    server.close()
    await server.wait_closed()


def unused_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def relay_notifier(port, *, security="none", username="", password="", language="ru", tmp_path=None):
    relay = Relay(host="127.0.0.1", port=port, security=security, username=username, password=password, timeout=5)
    return MailNotifier(composer(language), relay=relay, outbox_dir=(tmp_path or Path("/nonexistent")) / "outbox")


# --- settings ----------------------------------------------------------------------------------------


def configured(section):
    host = PluginHost({"plugins": {"mail": {"enabled": True, **section}}})
    host.register("mail", mail_plugin)
    host.configure()
    return host


def test_defaults_write_to_the_outbox_in_russian():
    host = configured({})
    notifier = host.registry.notifiers["mail"]
    assert host.infos["mail"].kinds == ["notifier"]
    assert notifier.relay is None and notifier.outbox_dir.name == "outbox"
    assert notifier.composer.language == "ru"
    assert host.settings_of("mail")["from_address"] == "Perezvon <noreply@localhost>"


def test_a_relay_is_configured_from_plugins_toml(tmp_path):
    host = configured(
        {
            "relay_host": "smtp.example.com",
            "relay_port": 465,
            "security": "tls",
            "username": "robot",
            "password": "s3cret",
            "language": "en",
            "outbox_dir": str(tmp_path),
        }
    )
    notifier = host.registry.notifiers["mail"]
    assert notifier.relay == Relay("smtp.example.com", 465, "tls", "robot", "s3cret", 30.0)
    assert "s3cret" not in repr(notifier.relay)  # never in a log line or a traceback
    assert notifier.composer.language == "en" and notifier.outbox_dir == tmp_path


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"security": "ssl"}, "setting 'security' in plugins.toml: Must be one of: starttls, tls, none."),
        (
            {"relay_host": "smtp://mail.example.com"},
            "setting 'relay_host' in plugins.toml: A host name or address only",
        ),
        ({"relay_host": "mail.example.com", "username": "robot"}, "setting 'username' in plugins.toml: Set both"),
        ({"username": "robot", "password": "x"}, "setting 'relay_host' in plugins.toml: A login needs a relay_host."),
        ({"from_address": "Perezvon"}, "setting 'from_address' in plugins.toml: Not a valid e-mail address."),
        ({"from_address": "a@example.com, b@example.com"}, "setting 'from_address' in plugins.toml: Not a valid"),
        ({"language": "de"}, "setting 'language' in plugins.toml: Must be one of: ru, en."),
        ({"relay_port": 0}, "setting 'relay_port' in plugins.toml:"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_field(section, error):
    with pytest.raises(PluginError) as caught:
        configured(section)
    assert str(caught.value).startswith(f"plugin 'mail': {error}")


# --- rendering: every kind, both languages ------------------------------------------------------------


def test_the_sample_data_has_the_fields_the_core_sends():
    """The samples stay in step with the models, so the tests render what the core really sends."""
    for sample, model in (
        (sample_connection(), Connection),
        (sample_lead(), Lead),
        (sample_call(), Call),
        (sample_attempt(1, 200, 200, "successful", ""), Attempt),
    ):
        expected = set(event_field_names(model))
        foreign_keys = {name for name in expected if name.endswith("_id")}
        assert set(sample) | foreign_keys == expected, model.__name__


def test_a_successful_callback_in_russian():
    data = call_data()
    rendered = composer("ru").render(notification("call_succeeded", data))
    assert rendered.subject == "Обратный звонок состоялся: +7 912 345-67-89, Иван Петров — Автосалон «Север»"
    for line in (
        "Сайт: Автосалон «Север» (cars.example)",
        "Телефон: +7 912 345-67-89",
        "Имя: Иван Петров",
        "Офис: Офис на Тверской",
        "Заявка получена: 12 мар. 2026, 14:05:09",  # UTC+5, the site's zone
        "Канал: реклама",
        "utm_source: yandex",
        "utm_campaign: spring",
        "Статус: Успешный",
        "Разговор: 2 мин 10 с",
        "Теги: уникальный, целевой",
        f"Открыть звонок в Perezvon: https://perezvon.example/calls/{data['call']['id']}",
        "Время указано в часовом поясе сайта: Asia/Yekaterinburg, UTC+05:00.",
    ):
        assert line in rendered.text.splitlines(), line
    assert "utm_content" not in rendered.text  # empty UTM fields are left out
    assert "Цепочка попыток" not in rendered.text  # one attempt: no chain to show
    assert '<a href="tel:+79123456789"' in rendered.html and "Разговор" in rendered.html
    assert f'href="https://perezvon.example/calls/{data["call"]["id"]}"' in rendered.html
    assert '<html lang="ru">' in rendered.html


def test_e_mails_make_no_new_header_classes():
    """The header classes are made once (compose._HeaderClasses), not per header of every e-mail: a
    class is a reference cycle, and thousands of them made the worker's collections stall its dials."""
    made = composer("ru")
    made.message(notification("call_succeeded", call_data()), ["boss@cars.example"]).as_bytes()  # warm
    gc.collect()
    gc.disable()
    try:
        before = len([o for o in gc.get_objects() if isinstance(o, type)])
        for _ in range(20):
            raw = made.message(notification("call_succeeded", call_data()), ["boss@cars.example"]).as_bytes()
        after = len([o for o in gc.get_objects() if isinstance(o, type)])
    finally:
        gc.enable()
    assert after - before == 0
    message = parse(raw)
    assert message["To"] == "boss@cars.example" and message["Auto-Submitted"] == "auto-generated"
    assert "Обратный звонок состоялся" in message["Subject"]


def test_a_successful_callback_in_english():
    rendered = composer("en").render(notification("call_succeeded", call_data()))
    assert rendered.subject == "Callback took place: +7 912 345-67-89, Иван Петров — Автосалон «Север»"
    for line in (
        "Status: Successful",
        "Talk time: 2 min 10 s",
        "Channel: advertising",
        "Tags: unique, target",
        "Lead received: 12 Mar 2026, 14:05:09",
        "Office: Офис на Тверской",
    ):
        assert line in rendered.text.splitlines(), line
    assert '<html lang="en">' in rendered.html and "The callback took place" in rendered.html


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "ru",
            [
                "Статус: Неуспешный",
                "Причина: Абонент не ответил вовремя: занято",
                "Попыток: 3",
                "Цепочка попыток:",
                "1. 12 мар. 2026, 14:01:00 — сначала оператор",
                "   оператор +7 495 123-45-67: 486, клиент: —",
                "   Несостоявшийся: номер оператора: занято",
                "2. 12 мар. 2026, 14:02:00 — сначала клиент",
                "   оператор +7 495 123-45-67: 200, клиент: 203",
                "   Неуспешный: ответил автоответчик клиента",
                "3. 12 мар. 2026, 14:03:00 — сначала оператор",
                "   Неуспешный: абонент не ответил вовремя: занято",
            ],
        ),
        (
            "en",
            [
                "Status: Unsuccessful",
                "Reason: The subscriber could not be reached in time: busy",
                "Attempts: 3",
                "Attempt chain:",
                "1. 12 Mar 2026, 14:01:00 — operator first",
                "   operator +7 495 123-45-67: 486, client: —",
                "   Failed: operator number: busy",
                "2. 12 Mar 2026, 14:02:00 — client first",
                "   Unsuccessful: client's voicemail answered",
            ],
        ),
    ],
)
def test_a_failed_chain_lists_every_attempt(language, expected):
    rendered = composer(language).render(notification("call_failed", call_data("call_failed")))
    lines = rendered.text.splitlines()
    for line in expected:
        assert line in lines, line
    assert rendered.subject.startswith(
        {"ru": "Обратный звонок не состоялся: +7 912 345-67-89", "en": "Callback failed: +7 912 345-67-89"}[language]
    )
    # the HTML chain is a table: a header and one row per attempt, each with both leg statuses
    chain = rendered.html.split("<tbody>")[1].split("</tbody>")[0]
    assert chain.count("<tr>") == 3
    assert ">203<" in chain and ">486<" in chain and ">—<" in chain


@pytest.mark.parametrize(
    ("language", "subject", "lines"),
    [
        (
            "ru",
            "Новая заявка, перезвоните сами: +7 912 345-67-89, Иван Петров — Автосалон «Север»",
            [
                "Новая заявка: перезвоните клиенту сами",
                "Телефон: +7 912 345-67-89",
                "Открыть заявку в Perezvon: https://perezvon.example/calls/c-42",
            ],
        ),
        (
            "en",
            "New lead, call back yourself: +7 912 345-67-89, Иван Петров — Автосалон «Север»",
            [
                "New lead: call the client back yourself",
                "Phone: +7 912 345-67-89",
                "Open the lead in Perezvon: https://perezvon.example/calls/c-42",
            ],
        ),
    ],
)
def test_a_delayed_lead_says_nobody_was_called(language, subject, lines):
    rendered = composer(language).render(notification("lead_delayed", other_kind_data("lead_delayed")))
    assert rendered.subject == subject
    for line in lines:
        assert line in rendered.text.splitlines(), line
    assert {
        "ru": "— 90 с, это больше 59 с, поэтому Perezvon никому не звонил",
        "en": "is 90 s, more than 59 s, so Perezvon has called nobody",
    }[language] in rendered.text
    assert "Статус" not in rendered.text and "Status" not in rendered.text  # there was no call


@pytest.mark.parametrize(
    ("language", "subject", "lines"),
    [
        (
            "ru",
            "Активация учётной записи в Perezvon",
            [
                "Здравствуйте, Ирина!",
                "https://perezvon.example/activate/Zm9v",
                "Ссылка сработает один раз и действует до 14 мар. 2026, 12:00:00 (Europe/Moscow, UTC+03:00).",
            ],
        ),
        (
            "en",
            "Activate your Perezvon account",
            [
                "Hello, Ирина!",
                "https://perezvon.example/activate/Zm9v",
                "The link works once and expires on 14 Mar 2026, 12:00:00 (Europe/Moscow, UTC+03:00).",
            ],
        ),
    ],
)
def test_an_activation_link(language, subject, lines):
    rendered = composer(language).render(notification("activation", other_kind_data("activation")))
    assert rendered.subject == subject
    for line in lines:
        assert line in rendered.text.splitlines(), line
    assert "+7 916 000-11-22" in rendered.text  # the login
    assert 'href="https://perezvon.example/activate/Zm9v"' in rendered.html


@pytest.mark.parametrize(
    ("language", "subject", "sentence"),
    [
        ("ru", "Код Perezvon для сайта cars.example", "перед закрывающим тегом </body>:"),
        ("en", "Perezvon code for cars.example", "right before the closing </body> tag:"),
    ],
)
def test_a_site_snippet(language, subject, sentence):
    rendered = composer(language).render(notification("site_snippet", other_kind_data("site_snippet")))
    assert rendered.subject == subject
    assert '<script async src="//perezvon.example/inject?token=abc"></script>' in rendered.text.splitlines()
    assert sentence in rendered.text
    # in HTML the snippet is shown as code, never run as a script
    assert "&lt;script async src=&#34;//perezvon.example/inject?token=abc&#34;&gt;&lt;/script&gt;" in rendered.html
    assert "<script" not in rendered.html
    assert sentence.replace("</body>", "&lt;/body&gt;") in rendered.html
    assert 'href="https://perezvon.example/help/snippet"' in rendered.html


def test_a_notification_may_ask_for_its_own_language():
    data = {**other_kind_data("activation"), "locale": "en"}
    assert composer("ru").render(notification("activation", data)).subject == "Activate your Perezvon account"


@pytest.mark.parametrize(
    ("kind", "data", "missing"),
    [
        ("activation", {"user": {"phone": "+79160001122"}, "expires_at": "2026-03-14T09:00:00+00:00"}, "link"),
        ("call_failed", {"connection": sample_connection(), "lead": sample_lead()}, "call, attempts"),
        ("site_snippet", {"connection": sample_connection()}, "snippet"),
    ],
)
def test_missing_data_is_a_permanent_error_that_names_it(kind, data, missing):
    with pytest.raises(NotificationDataError, match=f"needs {missing} in its data") as caught:
        composer().render(notification(kind, data, subject_id="1"))
    assert caught.value.retry is False


def test_an_activation_link_must_be_http():
    data = {**other_kind_data("activation"), "link": "javascript:alert(1)"}
    with pytest.raises(NotificationDataError, match="http"):
        composer().render(notification("activation", data))
    with pytest.raises(NotificationDataError, match="unknown notification kind 'sms'"):
        composer().render(notification("sms", {}, subject_id="1"))


def test_every_message_has_a_russian_translation():
    """Every message id in the code and the templates is in the Russian catalog, with the same placeholders."""
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2"), ("**/templates/**.txt", "jinja2")]
    options = {"**/templates/**": {"trim_blocks": "true", "lstrip_blocks": "true"}}
    used = {message for _, _, message, _, _ in extract_from_dir(PLUGIN_DIR, method_map, options)}
    with open(LOCALE_DIR / "ru" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = {m.id: m.string for m in read_po(fh, locale="ru") if m.id}
    assert len(used) > 50
    assert sorted(used - set(catalog)) == []  # not translated
    assert sorted(set(catalog) - used) == []  # translated but no longer used
    placeholders = re.compile(r"%\(\w+\)[sd]")
    for msgid, msgstr in catalog.items():
        assert msgstr, msgid
        assert sorted(placeholders.findall(msgid)) == sorted(placeholders.findall(msgstr)), msgid


# --- hostile input --------------------------------------------------------------------------------------


def header_lines(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.sub(r"\r\n[ \t]", " ", head).split("\r\n")  # unfolded


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\u2028", "\x85", "\x0b", "\x1c"])
async def test_a_name_cannot_add_a_header(breaker, smtp_sink):
    lead = sample_lead(name=f"Ivan{breaker}Bcc: victim@example.com")
    connection = sample_connection(name=f"Site{breaker}X-Injected: yes")
    await relay_notifier(smtp_sink.port).send(
        notification("call_succeeded", call_data(lead=lead, connection=connection))
    )
    [envelope] = smtp_sink.envelopes
    assert envelope.rcpt_tos == ["manager@example.com"]  # victim@example.com got nothing
    names = [line.split(":", 1)[0].lower() for line in header_lines(envelope.content)]
    assert "bcc" not in names and "x-injected" not in names
    message = parse(envelope.content)
    assert message["Subject"] == (
        "Обратный звонок состоялся: +7 912 345-67-89, Ivan Bcc: victim@example.com — Site X-Injected: yes"
    )
    text, _ = bodies(message)
    assert "Имя: Ivan Bcc: victim@example.com" in text.get_content().splitlines()  # and no forged body line


async def test_recipients_that_are_not_single_addresses_are_skipped(smtp_sink, caplog):
    recipients = (
        "manager@example.com",
        "x@example.com\r\nBcc: victim@example.com",
        "Boss <boss@example.com>",
        "nobody",
        "sales@example.com",
    )
    with caplog.at_level(logging.WARNING, logger="perezvon.mail"):
        await relay_notifier(smtp_sink.port).send(notification("call_succeeded", call_data(), recipients))
    [envelope] = smtp_sink.envelopes
    assert envelope.rcpt_tos == ["manager@example.com", "sales@example.com"]
    assert parse(envelope.content)["To"] == "manager@example.com, sales@example.com"
    assert caplog.text.count("skipped: not a single e-mail address") == 3
    with pytest.raises(NotificationDataError, match="no valid recipient"):
        await relay_notifier(smtp_sink.port).send(notification("call_succeeded", call_data(), ["nobody"]))


def test_visitor_html_is_escaped_and_only_http_links_are_made():
    lead = sample_lead(
        name='<img src=x onerror="alert(1)">',
        page_url="javascript:alert(document.cookie)",
        referrer='https://evil.example/"><script>alert(2)</script>',
        utm_campaign="<b>sale</b>",
    )
    html = composer().render(notification("call_succeeded", call_data(lead=lead))).html
    assert "<img" not in html and "<script" not in html and "<b>sale" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "&lt;b&gt;sale&lt;/b&gt;" in html
    assert 'href="javascript:' not in html and "javascript:alert(document.cookie)" in html  # shown, not linked
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(h.startswith(("https://", "tel:")) for h in hrefs), hrefs


def test_very_long_names_are_cut_and_never_hide_the_phone():
    lead = sample_lead(name="Константин " * 60)
    connection = sample_connection(name="Очень длинное название сайта " * 10)
    rendered = composer().render(notification("call_succeeded", call_data(lead=lead, connection=connection)))
    assert len(rendered.subject) <= 160
    assert rendered.subject.startswith("Обратный звонок состоялся: +7 912 345-67-89, Константин")
    assert "…" in rendered.subject
    [name_line] = [line for line in rendered.text.splitlines() if line.startswith("Имя: ")]
    assert len(name_line) <= len("Имя: ") + 200 and name_line.endswith("Константин…")


# --- the relay ---------------------------------------------------------------------------------------------


async def test_the_relay_receives_a_well_formed_message(smtp_sink):
    data = call_data("call_failed")
    note = notification("call_failed", data, ["manager@example.com", "boss@example.com"])
    await relay_notifier(smtp_sink.port).send(note)
    [envelope] = smtp_sink.envelopes
    assert envelope.mail_from == "robot@perezvon.example"
    assert envelope.rcpt_tos == ["manager@example.com", "boss@example.com"]
    message = parse(envelope.content)
    assert message["Subject"] == "Обратный звонок не состоялся: +7 912 345-67-89, Иван Петров — Автосалон «Север»"
    assert message["From"] == FROM and message["To"] == "manager@example.com, boss@example.com"
    assert message["Auto-Submitted"] == "auto-generated" and message["X-Perezvon-Kind"] == "call_failed"
    # stable per call, so a job run twice sends a message mail systems can recognise as the same one
    # (a long id is folded onto the next line, which the parser returns with the leading space)
    assert message["Message-ID"].strip() == f"<call_failed.{data['call']['id']}@perezvon.example>"
    assert message["Date"].datetime == note.created_at.replace(microsecond=0)
    assert message["Content-Language"] == "ru" and message["Reply-To"] is None
    assert message.get_content_type() == "multipart/alternative"
    text, html = bodies(message)
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert text["Content-Transfer-Encoding"] == html["Content-Transfer-Encoding"] == "base64"  # 7-bit for relays
    assert "Цепочка попыток:" in text.get_content() and "<h2" in html.get_content()
    # RFC 5322 on the wire: CRLF line ends, no line over 998 octets
    assert b"\n" not in envelope.content.replace(b"\r\n", b"")
    assert max(len(line) for line in envelope.content.split(b"\r\n")) <= 998


async def test_the_relay_login_is_used(smtp_sink):
    await relay_notifier(smtp_sink.port, username="robot", password="s3cret").send(
        notification("call_succeeded", call_data())
    )
    assert smtp_sink.logins == [(b"robot", b"s3cret")] and len(smtp_sink.envelopes) == 1
    with pytest.raises(DeliveryError) as caught:
        await relay_notifier(smtp_sink.port, username="robot", password="wrong").send(
            notification("call_succeeded", call_data())
        )
    assert (caught.value.status, caught.value.retry) == (535, False)
    assert len(smtp_sink.envelopes) == 1


async def test_a_5xx_rejection_is_permanent_and_logged_as_such(smtp_sink, caplog):
    smtp_sink.data_answer = "554 5.7.1 Message rejected as spam"
    with caplog.at_level(logging.WARNING, logger="perezvon.mail"), pytest.raises(DeliveryError) as caught:
        await relay_notifier(smtp_sink.port).send(notification("call_succeeded", call_data()))
    assert (caught.value.status, caught.value.retry) == (554, False)
    assert "5.7.1 Message rejected as spam" in caught.value.response
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "rejected it permanently" in record.getMessage()


async def test_a_4xx_answer_is_temporary(smtp_sink, caplog):
    smtp_sink.data_answer = "451 4.3.0 Try again later"
    with caplog.at_level(logging.WARNING, logger="perezvon.mail"), pytest.raises(DeliveryError) as caught:
        await relay_notifier(smtp_sink.port).send(notification("call_succeeded", call_data()))
    assert (caught.value.status, caught.value.retry) == (451, True)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "failed temporarily" in record.getMessage()


async def test_an_unreachable_relay_is_temporary():
    with pytest.raises(DeliveryError) as caught:
        await relay_notifier(unused_port()).send(notification("call_succeeded", call_data()))
    assert caught.value.retry is True and caught.value.status is None


async def test_starttls_never_falls_back_to_plain_text(smtp_sink):
    with pytest.raises(DeliveryError, match="STARTTLS") as caught:
        await relay_notifier(smtp_sink.port, security="starttls").send(notification("call_succeeded", call_data()))
    assert caught.value.retry is True and smtp_sink.envelopes == []


async def test_some_refused_recipients_do_not_resend_to_the_others(smtp_sink, caplog):
    smtp_sink.refuse_recipients = {"gone@example.com": "550 5.1.1 No such user"}
    with caplog.at_level(logging.WARNING, logger="perezvon.mail"):
        await relay_notifier(smtp_sink.port).send(
            notification("call_succeeded", call_data(), ["gone@example.com", "manager@example.com"])
        )
    assert [e.rcpt_tos for e in smtp_sink.envelopes] == [["manager@example.com"]]
    assert "gone@example.com: 550 5.1.1 No such user" in caplog.text
    smtp_sink.refuse_recipients["manager@example.com"] = "550 5.1.1 No such user"
    with pytest.raises(DeliveryError) as caught:
        await relay_notifier(smtp_sink.port).send(
            notification("call_succeeded", call_data(), ["gone@example.com", "manager@example.com"])
        )
    assert (caught.value.status, caught.value.retry) == (550, False)


# --- the outbox ------------------------------------------------------------------------------------------------


async def test_without_a_relay_messages_are_eml_files(tmp_path):
    notifier = MailNotifier(composer(), relay=None, outbox_dir=tmp_path / "outbox")
    data = call_data("call_failed")
    note = notification("call_failed", data)
    await notifier.send(note)
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-call_failed-{data['call']['id']}\.eml", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # clients' phones and activation links: the admin only
    with open(path, "rb") as fh:
        message = email.message_from_binary_file(fh, policy=email.policy.default)
    assert message["Subject"].startswith("Обратный звонок не состоялся: +7 912 345-67-89")
    assert message["To"] == "manager@example.com"
    text, _ = bodies(message)
    assert "Цепочка попыток:" in text.get_content()
    # the same job run again (a retry, a restart) leaves one file, and no temporary files behind:
    # a hidden marker names the file written (one look-up, however large the outbox grows)
    await notifier.send(note)
    marker = tmp_path / "outbox" / f".once-call_failed-{data['call']['id']}"
    assert sorted((tmp_path / "outbox").iterdir()) == sorted([path, marker])
    assert marker.read_text() == path.name


async def test_activation_links_sent_twice_are_two_messages(tmp_path):
    notifier = MailNotifier(composer(), relay=None, outbox_dir=tmp_path)
    for _ in range(2):
        await notifier.send(
            notification("activation", other_kind_data("activation"), ["irina@example.com"], subject_id="5")
        )
    files = sorted(tmp_path.glob("*-activation-5.eml"))
    assert len(files) == 2
    ids = {parse(f.read_bytes())["Message-ID"] for f in files}
    assert len(ids) == 2


# --- with the core: jobs, recipients, the demo -----------------------------------------------------------------


async def post_lead(client, site, phone, **extra):
    response = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def mail_notifier(perezvon_app):
    """Swap the registered mail notifier (outbox mode, from tests/plugins.toml) for one made by the test."""
    notifiers = perezvon_app.host.registry.notifiers
    original = notifiers["mail"]

    def install(notifier):
        notifiers["mail"] = notifier
        return notifier

    yield install
    notifiers["mail"] = original


async def test_a_finished_call_is_mailed_to_the_outbox(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone
):
    notifier = perezvon_app.host.registry.notifiers["mail"]
    assert notifier.outbox_dir == perezvon_app.settings.data_dir / "outbox"  # the default in tests/plugins.toml
    office = await Office.create(connection=perezvon_site, name="Офис на Тверской")
    await NotificationRecipient.create(connection=perezvon_site, email="tverskaya@example.com", office=office)
    phone = new_phone()
    created = await post_lead(
        perezvon_client,
        perezvon_site,
        phone,
        name="Мария",
        office_id=office.id,
        page_url=f"https://{perezvon_site.domain}/contacts",
    )
    await perezvon_run_jobs()
    [path] = notifier.outbox_dir.glob(f"*-call_succeeded-{created['call_id']}.eml")
    message = parse(path.read_bytes())
    assert message["To"] == "tverskaya@example.com"
    assert message["Subject"] == f"Обратный звонок состоялся: {format_ru(phone)}, Мария — Test site"
    text = bodies(message)[0].get_content().splitlines()
    assert "Офис: Офис на Тверской" in text and "Статус: Успешный" in text and "Разговор: 2 мин 10 с" in text
    assert f"Страница: https://{perezvon_site.domain}/contacts" in text


async def test_the_last_failed_attempt_reaches_the_relay_with_the_chain(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, smtp_sink, mail_notifier, tmp_path
):
    mail_notifier(relay_notifier(smtp_sink.port, tmp_path=tmp_path))
    perezvon_site.redial_matrix = EVERY_REDIAL_AT_ONCE
    await perezvon_site.save()
    office = await Office.create(connection=perezvon_site, name="Север")
    other = await Office.create(connection=perezvon_site, name="Юг")
    await NotificationRecipient.create(connection=perezvon_site, email="all@example.com")
    await NotificationRecipient.create(connection=perezvon_site, email="north@example.com", office=office)
    await NotificationRecipient.create(connection=perezvon_site, email="south@example.com", office=other)
    await NotificationRecipient.create(connection=perezvon_site, email="wins-only@example.com", on_failure=False)
    created = await post_lead(perezvon_client, perezvon_site, new_phone("0486"), office_id=office.id)
    await perezvon_run_jobs()
    [envelope] = smtp_sink.envelopes
    assert envelope.rcpt_tos == ["all@example.com", "north@example.com"]  # the core's office filter
    message = parse(envelope.content)
    assert message["X-Perezvon-Kind"] == "call_failed"
    text = bodies(message)[0].get_content().splitlines()
    assert "Офис: Север" in text and "Попыток: 5" in text
    chain = [line for line in text if re.match(r"^[1-5]\. ", line)]
    assert len(chain) == 5
    assert text.count("   Неуспешный: абонент не ответил вовремя: занято") == 5
    attempts = await Attempt.filter(call_id=created["call_id"]).order_by("number")
    connection = await Connection.get(id=perezvon_site.id)
    for line, attempt in zip(chain, attempts):  # each line's time is the attempt's, in the site's zone
        local = attempt.started_at.astimezone(ZoneInfo(connection.timezone))
        assert local.strftime("%H:%M:%S") in line


async def test_a_relay_that_is_down_makes_the_core_retry_with_back_off(
    perezvon_app, perezvon_site, mail_notifier, new_phone, tmp_path
):
    mail_notifier(relay_notifier(unused_port(), tmp_path=tmp_path))
    lead = await Lead.create(
        connection=perezvon_site, source="api", phone=new_phone(), created_at=dt.datetime.now(dt.UTC)
    )
    call = await Call.create(
        lead=lead,
        connection=perezvon_site,
        created_at=lead.created_at,
        state="finished",
        display_status="successful",
        reason="the callback took place",
    )
    await NotificationRecipient.create(connection=perezvon_site, email="manager@example.com")
    with pytest.raises(Retry) as caught:
        await jobs.notify({"perezvon": perezvon_app, "job_try": 2}, "mail", "call_succeeded", str(call.id))
    assert caught.value.defer_score == jobs.backoff_seconds(2) * 1000


async def test_the_demo_gets_a_recipient_once_and_shows_the_outbox(perezvon_app, perezvon_site):
    [step] = [s for s in perezvon_app.host.demo_steps() if s.__module__ == "perezvon.plugins.mail.demo"]
    first = await step(perezvon_site)
    second = await step(perezvon_site)
    assert first == second == {"outbox": str(perezvon_app.settings.data_dir / "outbox")}
    assert Path(first["outbox"]).is_dir()
    recipients = await NotificationRecipient.filter(connection_id=perezvon_site.id).values_list("email", flat=True)
    assert recipients == [DEMO_RECIPIENT]


def format_ru(e164: str) -> str:
    """+79161000000 -> +7 916 100-00-00, the way the messages show a Russian number."""
    return f"{e164[:2]} {e164[2:5]} {e164[5:8]}-{e164[8:10]}-{e164[10:]}"


def test_a_message_is_readable_as_written_and_encodes_what_needs_it():
    """The older API's message (compose.Composer.message): a Cyrillic sender's name and subject in
    RFC 2047 words, short-lined UTF-8 text as it is (the outbox reads as text), a line over the
    998-octet limit in base64, and a non-ASCII address through the newer API, which can write it."""
    made = Composer(
        language="ru",
        public_url="https://perezvon.example",
        from_address='"Перезвон, робот" <robot@perezvon.example>',
        reply_to="Отдел продаж <sales@perezvon.example>",
    )
    older = made.message(notification("call_failed", call_data()), ["boss@cars.example"])
    assert not isinstance(older, email.message.EmailMessage)
    raw = older.as_bytes()
    assert b"\r\nContent-Transfer-Encoding: 8bit\r\n" in raw
    assert "Обратный звонок не состоялся".encode() in raw  # the text as it is
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998 and b"\n" not in raw.replace(b"\r\n", b"")
    message = parse(raw)
    assert message["From"] == '"Перезвон, робот" <robot@perezvon.example>'
    assert message["Reply-To"] == "Отдел продаж <sales@perezvon.example>"
    assert message["Subject"].startswith("Обратный звонок не состоялся")
    assert message["MIME-Version"] == "1.0" and message["Content-Language"] == "ru"
    assert made.envelope_sender == "robot@perezvon.example"

    long_line = made.render(notification("call_failed", call_data()))
    note = notification("call_failed", call_data())
    made.render = lambda _: dataclasses.replace(long_line, html="<p>" + "Ж" * 600 + "</p>")  # 1,207 octets
    text, html = bodies(parse(made.message(note, ["boss@cars.example"]).as_bytes()))
    assert html["Content-Transfer-Encoding"] == "base64" and html.get_content() == "<p>" + "Ж" * 600 + "</p>"
    assert text["Content-Transfer-Encoding"] == "8bit"
    assert text["MIME-Version"] is None and html["MIME-Version"] is None  # said once, by the message

    made.render = lambda _: long_line
    newer = made.message(note, ["директор@пример.рф"])
    assert isinstance(newer, email.message.EmailMessage) and newer["To"] == "директор@пример.рф"
