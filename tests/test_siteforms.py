"""Site forms by e-mail: real SMTP sessions against the plugin's server, the form corpus, bad input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email
import email.policy
import json
import os
import signal
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import aiosmtplib
import httpx
import pytest

from perezvon.core import enablement
from perezvon.core.intake import IntakeError
from perezvon.core.models import (
    Call,
    Connection,
    Department,
    Lead,
    NotificationRecipient,
    Office,
    OperatorNumber,
    Project,
)
from perezvon.core.plugins import PluginHost
from perezvon.core.registry import PluginError, ServerContext
from perezvon.core.testing import ROUND_THE_CLOCK
from perezvon.plugins.siteforms.addresses import demo_step, switch_on, technical_address
from perezvon.plugins.siteforms.app import KEY
from perezvon.plugins.siteforms.decoding import decode_header_value, decode_text, html_to_text
from perezvon.plugins.siteforms.delivery import NO_PHONE_FOUND, UNREADABLE
from perezvon.plugins.siteforms.matching import SiteProfile, match_lead
from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus, RawMessage, TechnicalAddress
from perezvon.plugins.siteforms.parser import MessageTooComplex, check_structure, extract_fields, parse_message
from perezvon.plugins.siteforms.schemas import SiteFormsSettings
from perezvon.plugins.siteforms.server import SiteFormsSmtpServer
from perezvon.plugins.siteforms.store import MessageStore, purge_expired_raw

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "mail_corpus"
CORPUS_SITES = json.loads((CORPUS / "sites.json").read_text(encoding="utf-8"))
DOMAIN = CORPUS_SITES["domain"]  # the intake domain of tests/plugins.toml
PERZVON = [sys.executable, "-m", "perezvon.core.cli"]


# --- a small SMTP client that shows every reply ------------------------------------------------------


class Dialogue:
    """One SMTP session over a real socket, command by command, replies as (code, text)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Dialogue:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        dialogue = cls(reader, writer)
        assert (await dialogue.reply())[0] == 220
        return dialogue

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 60)).decode()
            assert line, "the server closed the connection"
            lines.append(line[4:].rstrip())
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def command(self, line: str) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def data(self, raw: bytes) -> tuple[int, str]:
        code, text = await self.command("DATA")
        if code != 354:
            return code, text
        body = b"\r\n".join((b"." + line if line.startswith(b".") else line) for line in raw.split(b"\r\n"))
        self.writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        await self.writer.drain()
        return await self.reply()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("QUIT")
        self.writer.close()


async def send(port: int, recipients: list[str], raw: bytes, sender: str = "robot@site.example") -> dict:
    """One message in one session: the reply to every RCPT and to DATA."""
    dialogue = await Dialogue.open(port)
    try:
        assert (await dialogue.command("EHLO site.example"))[0] == 250
        assert (await dialogue.command(f"MAIL FROM:<{sender}>"))[0] == 250
        rcpt = [await dialogue.command(f"RCPT TO:<{r}>") for r in recipients]
        data = await dialogue.data(raw) if any(code == 250 for code, _ in rcpt) else None
        return {"rcpt": rcpt, "data": data}
    finally:
        await dialogue.close()


def form_email(
    to: str,
    body: str,
    *,
    subject: str = "Заявка с сайта",
    message_id: str | None = None,
    charset: str = "utf-8",
    content_type: str = "text/plain",
) -> bytes:
    """A plain form e-mail as a PHP script sends it, base64 in the given charset."""
    message_id = message_id if message_id is not None else f"<{uuid.uuid4().hex}@site.example>"
    subject_word = "=?utf-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    headers = (
        f"From: robot@site.example\r\nTo: {to}\r\nSubject: {subject_word}\r\n"
        + (f"Message-ID: {message_id}\r\n" if message_id else "")
        + f"MIME-Version: 1.0\r\nContent-Type: {content_type}; charset={charset}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    encoded = base64.encodebytes(body.replace("\n", "\r\n").encode(charset)).replace(b"\n", b"\r\n")
    return headers.encode() + encoded


# --- fixtures ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def smtp_server(perezvon_app, **settings):
    """The plugin's server on a free port: as ``perezvon serve`` builds it, or with other settings."""
    context = ServerContext(intake=perezvon_app.intake, host="127.0.0.1", ports={"smtp": 0})
    if settings:
        servers = [
            SiteFormsSmtpServer(
                context, SiteFormsSettings().load({"domain": DOMAIN, **settings}), perezvon_app.settings
            )
        ]
    else:
        servers = [s for s in perezvon_app.host.servers(context) if isinstance(s, SiteFormsSmtpServer)]
    assert len(servers) == 1
    server = servers[0]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def smtp(perezvon_app):
    async with smtp_server(perezvon_app) as server:
        yield server


@pytest.fixture
async def forms_site(perezvon_site):
    """A connection with site forms switched on; ``.email`` is its technical address."""
    perezvon_site.email = await switch_on(perezvon_site, DOMAIN)
    return perezvon_site


async def make_forms_site(perezvon_app) -> Connection:
    """Another connection like ``perezvon_site``, with site forms on; ``.email`` is its address."""
    project = await Project.create(name="Another company")
    domain = f"site-{uuid.uuid4().hex[:10]}.example"
    connection = await Connection.create(project=project, domain=domain, name="Other site", schedule=ROUND_THE_CLOCK)
    await OperatorNumber.create(connection=connection, phone="+74951234567")
    connection.email = await switch_on(connection, DOMAIN)
    return connection


def phone_text(phone: str) -> str:
    """``+79161234567`` as a visitor types it: ``8 (916) 123-45-67``."""
    return f"8 ({phone[2:5]}) {phone[5:8]}-{phone[8:10]}-{phone[10:]}"


async def corpus_site(domain: str) -> Connection:
    """The corpus's site (tests/mail_corpus/sites.json), made once per test database."""
    spec = CORPUS_SITES["sites"][domain]
    connection = await Connection.get_or_none(domain=domain)
    if connection is None:
        project = await Project.create(name=f"Corpus: {domain}")
        connection = await Connection.create(project=project, domain=domain, name=domain, schedule=ROUND_THE_CLOCK)
        await OperatorNumber.create(connection=connection, phone=CORPUS_SITES["operator_phone"])
        for order, office in enumerate(spec["offices"]):
            await Office.create(
                connection=connection, name=office["name"], alt_name=office["alt_name"], sort_order=order
            )
        for order, name in enumerate(spec["departments"]):
            await Department.create(connection=connection, name=name, sort_order=order)
        await enablement.enable(connection, enablement.APPLICATION, KEY, {})
        await TechnicalAddress.create(connection=connection, local_part=spec["technical_address"])
    return connection


# --- registration -----------------------------------------------------------------------------------


def test_the_plugin_registers_its_lead_source_application_and_settings(tmp_path):
    toml = tmp_path / "plugins.toml"
    toml.write_text(
        "[plugins.simulator]\nenabled = true\n[plugins.siteforms]\nenabled = true\n"
        'domain = "mx.example.org"\nmax_recipients = 10\n'
    )
    host = PluginHost.from_file(toml)
    source = host.registry.lead_sources["siteforms"]
    assert (source.title, source.calltouch_code) == ("Формы сайта", 15)
    assert host.registry.applications["siteforms"].lead_source == "siteforms"
    assert host.registry.applications["siteforms"].default_settings() == {}
    info = host.infos["siteforms"]
    assert info.origin == "built-in" and info.kinds == ["application", "lead source"]
    assert info.settings["domain"] == "mx.example.org" and info.settings["max_recipients"] == 10
    assert info.settings["max_message_bytes"] == 10 * 1024 * 1024 and info.settings["raw_retention_days"] == 30
    assert host.model_modules()["siteforms"] == ["perezvon.plugins.siteforms.models"]


@pytest.mark.parametrize(
    "setting, message",
    [
        ('domain = "not a domain"', "setting 'domain' in plugins.toml: Not a domain name."),
        ('tls_cert = "/etc/cert.pem"', "setting 'tls_key' in plugins.toml: Set tls_cert and tls_key together."),
        ("max_recipients = 0", "setting 'max_recipients' in plugins.toml"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_field(tmp_path, setting, message):
    toml = tmp_path / "plugins.toml"
    toml.write_text(f"[plugins.siteforms]\nenabled = true\n{setting}\n")
    with pytest.raises(PluginError) as caught:
        PluginHost.from_file(toml)
    assert str(caught.value).startswith(f"plugin 'siteforms': {message}")


async def test_a_connection_gets_one_random_technical_address(perezvon_site):
    first = await technical_address(perezvon_site.id)
    again, concurrent = await asyncio.gather(technical_address(perezvon_site.id), technical_address(perezvon_site.id))
    assert first.id == again.id == concurrent.id
    assert len(first.local_part) == 32 and int(first.local_part, 16) >= 0
    step = demo_step(DOMAIN)
    assert await step(perezvon_site) == await step(perezvon_site) == {"technical_email": f"{first.local_part}@{DOMAIN}"}


# --- the corpus: what real site builders and CMSs send ------------------------------------------------


@pytest.mark.parametrize("eml", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.stem)
async def test_each_corpus_message_makes_its_lead(perezvon_app, smtp, eml):
    expected = json.loads(eml.with_suffix(".json").read_text(encoding="utf-8"))
    connection = await corpus_site(expected["site"])
    address = f"{CORPUS_SITES['sites'][expected['site']]['technical_address']}@{DOMAIN}"
    raw = eml.read_bytes()
    replies = await send(smtp.port, [address], raw)
    assert replies["rcpt"] == [(250, "2.1.5 OK")]
    assert replies["data"][0] == 250, replies

    message = await InboundMessage.get(connection_id=connection.id, message_id=parse_message(raw).message_id)
    if expected["status"] == "lead":
        lead_expected = expected["lead"]
        lead = await Lead.get(id=message.lead_id)
        assert lead.phone == lead_expected["phone"] and lead.source == "siteforms"
        assert lead.name == lead_expected["name"]
        assert ((await lead.office).name if lead.office_id else None) == lead_expected["office"]
        assert ((await lead.department).name if lead.department_id else None) == lead_expected["department"]
        assert lead.page_url == lead_expected["page_url"]
        utm = {key: getattr(lead, f"utm_{key}") for key in ("source", "medium", "campaign", "content", "term")}
        assert utm == {key: lead_expected["utm"].get(key, "") for key in utm}
        assert lead.extra["subject"] == message.subject and lead.extra["inbound_message"] == str(message.id)
        assert await Call.exists(lead_id=lead.id, id=message.call_id)
        assert replies["data"][1] == "2.0.0 OK: lead created"
    else:
        assert message.status == expected["status"] == MessageStatus.NO_PHONE
        assert message.lead_id is None and message.error == NO_PHONE_FOUND
        assert replies["data"][1] == "2.0.0 OK: no phone number found, message kept"
    assert message.status == expected["status"]
    assert (await RawMessage.get(message_id=message.id)).content == raw  # kept byte for byte for support


def test_the_corpus_covers_the_site_builders_and_charsets_of_the_issue():
    described = " ".join(
        json.loads(p.read_text(encoding="utf-8"))["cms"] for p in CORPUS.glob("*.json") if p.name != "sites.json"
    )
    for name in ("Tilda", "1C-Bitrix", "Contact Form 7", "MODX", "Joomla", "PHP mail()"):
        assert name in described, name
    for charset in ("UTF-8", "windows-1251", "KOI8-R", "base64", "quoted-printable", "wrong charset label"):
        assert charset in described, charset


# --- RCPT: whose mail the server takes ------------------------------------------------------------------


async def test_unknown_foreign_and_switched_off_addresses_are_refused_at_rcpt(smtp, forms_site, new_phone):
    local = forms_site.email.split("@")[0]
    replies = await send(
        smtp.port,
        [
            f"{'0' * 32}@{DOMAIN}",  # no such address
            f"{local}@gmail.com",  # somebody else's domain: no relaying
            f"{local}@{DOMAIN.upper()}",  # domains are case-insensitive
            f"{local.upper()}+orders@{DOMAIN}",  # so is the local part; "+tag" is the same address
        ],
        form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}"),
    )
    assert replies["rcpt"][0] == (550, "5.1.1 No such technical address")
    assert replies["rcpt"][1] == (550, f"5.7.1 Relaying denied: this server takes mail for @{DOMAIN} only")
    assert replies["rcpt"][2:] == [(250, "2.1.5 OK"), (250, "2.1.5 OK")]
    assert replies["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.filter(connection_id=forms_site.id).count() == 1  # one address, named twice: one lead

    await enablement.switch(forms_site.id, enablement.APPLICATION, KEY, False)
    off = await send(smtp.port, [forms_site.email], b"Subject: x\r\n\r\nx\r\n")
    assert off["rcpt"] == [(550, "5.2.1 Site forms are switched off for this address")] and off["data"] is None
    await enablement.switch(forms_site.id, enablement.APPLICATION, KEY, True)
    await Connection.filter(id=forms_site.id).update(is_on=False)
    assert (await send(smtp.port, [forms_site.email], b"x\r\n"))["rcpt"][0][0] == 550


async def test_no_data_without_an_accepted_recipient_and_no_auth_offered(smtp, forms_site):
    dialogue = await Dialogue.open(smtp.port)
    try:
        code, ehlo = await dialogue.command("EHLO site.example")
        assert code == 250 and "SIZE 10485760" in ehlo and "AUTH" not in ehlo and "STARTTLS" not in ehlo
        await dialogue.command("MAIL FROM:<robot@site.example>")
        assert (await dialogue.command(f"RCPT TO:<someone@{DOMAIN}>"))[0] == 550
        assert (await dialogue.command("DATA"))[0] == 503
    finally:
        await dialogue.close()


async def test_thousands_of_recipients_get_452_and_others_are_served_meanwhile(
    perezvon_app, smtp, forms_site, new_phone
):
    phone = new_phone()
    dialogue = await Dialogue.open(smtp.port)
    try:
        await dialogue.command("EHLO harvester.example")
        await dialogue.command("MAIL FROM:<spam@harvester.example>")
        replies = []
        for n in range(3000):
            recipient = forms_site.email if n == 10 else f"guess{n}@{DOMAIN}"
            replies.append((await dialogue.command(f"RCPT TO:<{recipient}>"))[0])
            if n == 1500:  # meanwhile another site's mail server delivers a form
                other = await send(
                    smtp.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}")
                )
                assert other["data"][0] == 250
        limit = smtp.settings["max_recipients"]
        assert replies[:limit].count(550) == limit - 1 and replies[10] == 250
        assert replies[limit:] == [452] * (3000 - limit)
        code, _ = await dialogue.data(form_email(forms_site.email, f"Телефон: {phone_text(phone)}"))
        assert code == 250  # the recipient accepted before the limit gets its message
    finally:
        await dialogue.close()
    assert await Lead.filter(connection_id=forms_site.id, phone=phone).count() == 1


# --- size -----------------------------------------------------------------------------------------------------


async def test_a_declared_size_over_the_limit_is_refused_at_mail_from(smtp, forms_site):
    dialogue = await Dialogue.open(smtp.port)
    try:
        await dialogue.command("EHLO site.example")
        code, text = await dialogue.command(f"MAIL FROM:<robot@site.example> SIZE={100 * 1024 * 1024}")
        assert code == 552 and "size" in text
    finally:
        await dialogue.close()


async def test_a_100_mb_message_gets_552_while_others_are_served_and_the_session_goes_on(
    perezvon_app, smtp, forms_site, new_phone
):
    phone, other_phone = new_phone(), new_phone()
    dialogue = await Dialogue.open(smtp.port)
    try:
        await dialogue.command("EHLO site.example")
        await dialogue.command("MAIL FROM:<robot@site.example>")  # no SIZE: the limit is met while reading
        assert (await dialogue.command(f"RCPT TO:<{forms_site.email}>"))[0] == 250
        assert (await dialogue.command("DATA"))[0] == 354
        dialogue.writer.write(form_email(forms_site.email, f"Телефон: {phone_text(phone)}") + b"\r\n")
        line = b"x" * 998 + b"\r\n"
        chunk = line * 1024  # 1 MiB
        for n in range(100):
            dialogue.writer.write(chunk)
            await dialogue.writer.drain()
            if n == 50:  # another session is served in the middle of it
                other = await send(
                    smtp.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(other_phone)}")
                )
                assert other["data"] == (250, "2.0.0 OK: lead created")
        dialogue.writer.write(b".\r\n")
        assert (await dialogue.reply())[0] == 552
        # the session is still usable: the next message of it goes through
        assert (await dialogue.command("MAIL FROM:<robot@site.example>"))[0] == 250
        assert (await dialogue.command(f"RCPT TO:<{forms_site.email}>"))[0] == 250
        next_phone = new_phone()
        assert (await dialogue.data(form_email(forms_site.email, f"Телефон: {phone_text(next_phone)}")))[0] == 250
    finally:
        await dialogue.close()
    assert not await Lead.exists(phone=phone)  # nothing of the refused message was kept
    assert await Lead.exists(phone=other_phone) and await Lead.exists(phone=next_phone)


# --- durability: one lead per message, nothing stored means no 250 -------------------------------------------


async def test_the_same_message_id_makes_one_lead(smtp, forms_site, new_phone):
    raw = form_email(
        forms_site.email, f"Имя: Олег\nТелефон: {phone_text(new_phone())}", message_id="<resent-1@site.example>"
    )
    first = await send(smtp.port, [forms_site.email], raw)
    again = await send(smtp.port, [forms_site.email], raw)  # e.g. the 250 was lost and the sender retried
    assert first["data"] == (250, "2.0.0 OK: lead created")
    assert again["data"] == (250, "2.0.0 OK: duplicate message, no new lead")
    rows = await InboundMessage.filter(connection_id=forms_site.id).order_by("received_at")
    assert [r.status for r in rows] == [MessageStatus.LEAD, MessageStatus.DUPLICATE]
    assert rows[1].duplicate_of_id == rows[0].id and rows[1].lead_id == rows[0].lead_id
    assert await Lead.filter(connection_id=forms_site.id).count() == 1
    assert rows[1].status_label("ru") and rows[1].status_label("en") == "Duplicate message"


async def test_concurrent_copies_and_copies_without_message_id_make_one_lead(smtp, forms_site, new_phone):
    raw = form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}", message_id="<twin@site.example>")
    answers = await asyncio.gather(*(send(smtp.port, [forms_site.email], raw) for _ in range(5)))
    assert all(a["data"][0] == 250 for a in answers)
    no_id = form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}", message_id="")
    for _ in range(2):
        assert (await send(smtp.port, [forms_site.email], no_id))["data"][0] == 250
    statuses = sorted(await InboundMessage.filter(connection_id=forms_site.id).values_list("status", flat=True))
    assert statuses == ["duplicate"] * 5 + ["lead"] * 2
    assert await Lead.filter(connection_id=forms_site.id).count() == 2


async def test_a_database_failure_answers_451_and_stores_nothing(smtp, forms_site, new_phone, monkeypatch):
    from tortoise.exceptions import OperationalError

    async def database_down(self, items):
        raise OperationalError("connection refused")

    phone = new_phone()
    raw = form_email(forms_site.email, f"Телефон: {phone_text(phone)}")
    with monkeypatch.context() as patch:
        patch.setattr(MessageStore, "_insert", database_down)
        refused = await send(smtp.port, [forms_site.email], raw)
    assert refused["data"] == (451, "4.3.0 The message could not be stored now, try again later")
    assert not await InboundMessage.exists(connection_id=forms_site.id)
    retried = await send(smtp.port, [forms_site.email], raw)  # the sender's MTA tries again later
    assert retried["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.filter(connection_id=forms_site.id, phone=phone).count() == 1


async def test_an_intake_that_cannot_store_the_lead_now_answers_451(
    perezvon_app, smtp, forms_site, new_phone, monkeypatch
):
    from tortoise.exceptions import OperationalError

    async def leads_table_down(rows):
        raise OperationalError("could not write")

    phone = new_phone()
    raw = form_email(forms_site.email, f"Телефон: {phone_text(phone)}")
    with monkeypatch.context() as patch:  # the intake answers 503: the lead could not be stored
        patch.setattr(perezvon_app.intake._insert_leads, "execute", leads_table_down)
        reply = await send(smtp.port, [forms_site.email], raw)
    assert reply["data"] == (451, "4.3.0 The message could not be stored now, try again later")
    assert not await InboundMessage.exists(connection_id=forms_site.id)
    assert (await send(smtp.port, [forms_site.email], raw))["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.filter(connection_id=forms_site.id, phone=phone).count() == 1


async def test_a_site_form_is_not_held_to_required_choices_its_visitor_never_saw(
    perezvon_app, smtp, forms_site, new_phone
):
    """Office and department required for the widget: an e-mailed form has no such choice, so its
    lead is taken with them empty (or as the e-mail names them), never lost; the widget is still held."""
    forms_site.offices_enabled = forms_site.offices_required = True
    forms_site.departments_enabled = forms_site.departments_required = True
    await forms_site.save()
    centre = await Office.create(connection=forms_site, name="Центр", alt_name="Центральный офис")
    service = await Department.create(connection=forms_site, name="Сервис")
    bare, named = new_phone(), new_phone()
    replies = [
        await send(smtp.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(bare)}")),
        await send(
            smtp.port,
            [forms_site.email],
            form_email(forms_site.email, f"Телефон: {phone_text(named)}\nКуда: Центральный офис, Сервис"),
        ),
    ]
    assert [r["data"] for r in replies] == [(250, "2.0.0 OK: lead created")] * 2
    lead = await Lead.get(connection_id=forms_site.id, phone=bare)
    assert (lead.source, lead.office_id, lead.department_id) == ("siteforms", None, None)
    assert await Call.exists(lead_id=lead.id)
    lead = await Lead.get(connection_id=forms_site.id, phone=named)
    assert (lead.office_id, lead.department_id) == (centre.id, service.id)
    with pytest.raises(IntakeError) as refused:  # a visitor who saw the choice must still make it
        await perezvon_app.intake.submit(
            {"token": forms_site.token, "phone": new_phone(), "consent": True, "source": "api"}, client_ip=None
        )
    assert refused.value.errors == {"office_id": ["Choose one."], "department_id": ["Choose one."]}


async def refused_by_switching_off(port: int, site, raw: bytes) -> tuple[int, str]:
    """The site is switched off between RCPT (taken) and DATA: the intake refuses the lead."""
    dialogue = await Dialogue.open(port)
    try:
        await dialogue.command("EHLO site.example")
        await dialogue.command("MAIL FROM:<robot@site.example>")
        assert (await dialogue.command(f"RCPT TO:<{site.email}>"))[0] == 250
        await Connection.filter(id=site.id).update(is_on=False)
        return await dialogue.data(raw)
    finally:
        await dialogue.close()


async def test_a_lead_the_intake_refuses_is_kept_with_the_reason(smtp, forms_site, new_phone):
    raw = form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}", subject="Запись на сервис")
    assert await refused_by_switching_off(smtp.port, forms_site, raw) == (
        250,
        "2.0.0 OK: message kept, the lead was refused",
    )
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.REFUSED_BY_INTAKE
    assert message.error == "site_off token: Callbacks are switched off for this site."
    assert (message.subject, message.mail_from) == ("Запись на сервис", "robot@site.example")
    assert await RawMessage.exists(message_id=message.id)


def outbox_files(perezvon_app, kind: str, subject_id: str) -> list[Path]:
    return sorted((Path(perezvon_app.settings.data_dir) / "outbox").glob(f"*-{kind}-{subject_id}.eml"))


async def test_kept_messages_are_told_to_the_connections_recipients(
    perezvon_app, smtp, forms_site, new_phone, perezvon_run_jobs
):
    """A refused message and a phone-less one are not invisible: the recipients get an e-mail
    (through the mail notifier) with when, from whom, the subject and why."""
    await NotificationRecipient.create(connection=forms_site, email="boss@example.com", on_success=False)
    await NotificationRecipient.create(connection=forms_site, email="desk@example.com", on_failure=False)
    raw = form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}", subject="Запись на сервис")
    await refused_by_switching_off(smtp.port, forms_site, raw)
    message = await InboundMessage.get(connection_id=forms_site.id)
    await perezvon_run_jobs()
    sent = outbox_files(perezvon_app, "form_email_kept", str(message.id))
    assert len(sent) == 1
    notice = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
    assert notice["To"] == "boss@example.com, desk@example.com"
    assert notice["Subject"] == "Письмо с формы сайта сохранено без звонка — Test site"
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert "Отправитель: robot@site.example" in text and "Тема: Запись на сервис" in text
    assert "Причина: Заявка отклонена: Обратные звонки для этого сайта были выключены" in text
    assert f"/connections/{forms_site.id}#panel-siteforms" in text

    # a phone-less one on another connection is told too; a second one within ten minutes only listed
    other = await make_forms_site(perezvon_app)
    await NotificationRecipient.create(connection=other, email="owner@example.com")
    for subject in ("Подписка", "Подписка ещё раз"):
        reply = await send(smtp.port, [other.email], form_email(other.email, "Имя: Вера", subject=subject))
        assert reply["data"] == (250, "2.0.0 OK: no phone number found, message kept")
    first, second = await InboundMessage.filter(connection_id=other.id).order_by("received_at")
    await perezvon_run_jobs()
    assert len(outbox_files(perezvon_app, "form_email_kept", str(first.id))) == 1
    assert outbox_files(perezvon_app, "form_email_kept", str(second.id)) == []
    notice = email.message_from_bytes(
        outbox_files(perezvon_app, "form_email_kept", str(first.id))[0].read_bytes(), policy=email.policy.default
    )
    assert (
        "Причина: Телефон не найден: В письме не найден номер телефона."
        in notice.get_body(preferencelist=("plain",)).get_content()
    )


async def test_a_form_for_a_site_that_can_neither_call_nor_email_is_kept_as_refused(smtp, forms_site, new_phone):
    await OperatorNumber.filter(connection_id=forms_site.id).delete()  # and no notification recipient
    reply = await send(
        smtp.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}")
    )
    assert reply["data"] == (250, "2.0.0 OK: message kept, the lead was refused")
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.REFUSED_BY_INTAKE and "Callbacks cannot be ordered" in message.error
    assert not await Lead.filter(connection_id=forms_site.id).exists()


def test_every_intake_reason_has_its_place_in_the_smtp_intake():
    """Only "could not store it now" makes the sender try again (451); every other refusal is kept and shown."""
    from perezvon.api import IntakeReason
    from perezvon.plugins.siteforms.delivery import ON_REFUSAL

    assert set(ON_REFUSAL) == set(IntakeReason)
    assert [reason for reason, status in ON_REFUSAL.items() if status is None] == [IntakeReason.UNAVAILABLE]
    assert set(ON_REFUSAL.values()) == {None, MessageStatus.REFUSED_BY_INTAKE}
    from perezvon.plugins.siteforms.panel import REFUSALS

    assert set(REFUSALS) == set(IntakeReason)  # and the connection's page says each in words


# --- bad input ------------------------------------------------------------------------------------------------


async def test_malformed_mime_and_wrong_charset_labels_still_make_leads(smtp, forms_site, new_phone):
    phones = [new_phone() for _ in range(3)]
    to = forms_site.email
    no_closing_boundary = (
        f"To: {to}\r\nSubject: =?bogus-charset?B?////?=\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(f"Телефон: {phones[0]}\r\nИмя: Ирина Ивановна".encode()).decode()[:-3]
        + "!!\r\n"  # broken base64: its tail is lost
        "--b1\r\nContent-Type: text/html\r\n\r\n<p>unclosed <b>markup <td><tr>\r\n"
    ).encode()
    unknown_label = form_email(
        to, f"Имя: Ирина\nТелефон: {phone_text(phones[1])}", charset="windows-1251", content_type="text/plain"
    ).replace(b"charset=windows-1251", b"charset=x-no-such-set")
    koi8_labelled_as_cp1251 = form_email(to, f"Имя: Ирина\nТелефон: {phone_text(phones[2])}", charset="koi8-r").replace(
        b"charset=koi8-r", b"charset=windows-1251"
    )
    for raw in (no_closing_boundary, unknown_label, koi8_labelled_as_cp1251):
        assert (await send(smtp.port, [to], raw))["data"] == (250, "2.0.0 OK: lead created")
    leads = await Lead.filter(connection_id=forms_site.id).order_by("created_at")
    assert [lead.phone for lead in leads] == phones
    assert [lead.name for lead in leads][1:] == ["Ирина", "Ирина"]
    broken = await InboundMessage.get(lead_id=leads[0].id)
    assert "CloseBoundaryNotFoundDefect" in broken.defects  # noted for support


async def test_garbage_is_kept_as_no_phone_not_lost(smtp, forms_site):
    garbage = bytes(range(256)) * 40 + b"\r\n\r\n\r\n--\r\n=?=?==\r\n"
    reply = await send(smtp.port, [forms_site.email], garbage)
    assert reply["data"] == (250, "2.0.0 OK: no phone number found, message kept")
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.NO_PHONE and message.status_label("en") == "No phone found"
    assert (await RawMessage.get(message_id=message.id)).content == garbage


async def test_a_message_the_parser_chokes_on_is_kept_not_lost(smtp, forms_site, monkeypatch):
    def parser_bug(raw):
        raise KeyError("a bug in the parser")

    monkeypatch.setattr("perezvon.plugins.siteforms.server.parse_message", parser_bug)
    raw = form_email(forms_site.email, "Телефон: +7 916 000-00-00")
    assert (await send(smtp.port, [forms_site.email], raw))["data"] == (
        250,
        "2.0.0 OK: no phone number found, message kept",
    )
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.error == UNREADABLE and message.defects == "KeyError: 'a bug in the parser'"
    assert (await RawMessage.get(message_id=message.id)).content == raw


def _nested(depth: int, innermost: str) -> bytes:
    """A message of ``depth`` multiparts, each the only part of the one around it."""
    opening = [f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n--n{level}\r\n' for level in range(depth)]
    closing = [f"\r\n--n{level}--\r\n" for level in reversed(range(depth))]
    return ("Subject: nested\r\nMIME-Version: 1.0\r\n" + "".join(opening) + innermost + "".join(closing)).encode()


async def test_a_bomb_of_nested_or_sibling_parts_is_refused_and_the_server_goes_on(smtp, forms_site, new_phone):
    deep = _nested(5000, "Content-Type: text/plain\r\n\r\nТелефон: +7 916 000-00-01")
    wide = (
        b'Subject: wide\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="w"\r\n\r\n'
        + b"--w\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 50_000
        + b"--w--\r\n"
    )
    for bomb in (deep, wide):
        started = time.monotonic()
        reply = await send(smtp.port, [forms_site.email], bomb)
        assert reply["data"][0] == 554 and reply["data"][1].startswith("5.6.0 Message refused:")
        assert time.monotonic() - started < 10
    phone = new_phone()
    nested_form = _nested(30, f"Content-Type: text/plain; charset=utf-8\r\n\r\nТелефон: {phone_text(phone)}")
    assert (await send(smtp.port, [forms_site.email], nested_form))["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.exists(connection_id=forms_site.id, phone=phone)
    assert await InboundMessage.filter(connection_id=forms_site.id).count() == 1  # the bombs were not accepted


async def test_no_cr_or_lf_reaches_a_lead_name(smtp, forms_site, new_phone):
    phone = new_phone()
    html = (
        f"<table><tr><td>Имя</td><td>Иван&#13;&#10;Bcc: victim@example.com</td></tr>"
        f"<tr><td>Телефон</td><td>{phone}</td></tr></table>"
    )
    raw = form_email(forms_site.email, html, content_type="text/html")
    assert (await send(smtp.port, [forms_site.email], raw))["data"][0] == 250
    lead = await Lead.get(connection_id=forms_site.id, phone=phone)
    assert lead.name == "Иван Bcc"  # one line; the e-mail address is not part of a name
    encoded = form_email(
        forms_site.email, f"Телефон: {phone_text(new_phone())}", subject="Заявка\r\nBcc: victim@example.com"
    )
    assert (await send(smtp.port, [forms_site.email], encoded))["data"][0] == 250
    subjects = await InboundMessage.filter(connection_id=forms_site.id).values_list("subject", flat=True)
    assert all("\r" not in s and "\n" not in s for s in subjects)


def self_signed_certificate(folder):
    """A certificate and key for the intake domain, as STARTTLS needs them: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={DOMAIN}"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_starttls_with_a_configured_certificate(perezvon_app, forms_site, new_phone, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    phone = new_phone()
    async with smtp_server(perezvon_app, tls_cert=str(cert), tls_key=str(key)) as server:
        assert "STARTTLS" in server.describe()
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False)
        await client.connect()
        try:
            await client.ehlo()
            assert client.supports_extension("starttls") and not client.supports_extension("auth")
            await client.starttls(validate_certs=False)
            assert client.get_transport_info("sslcontext") is not None
            errors, reply = await client.sendmail(
                "robot@site.example", [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(phone)}")
            )
            assert errors == {} and reply == "2.0.0 OK: lead created"
        finally:
            await client.quit()
    assert await Lead.exists(connection_id=forms_site.id, phone=phone)


def test_an_unreadable_certificate_is_a_clear_start_up_error(tmp_path):
    settings = SiteFormsSettings().load({"tls_cert": str(tmp_path / "absent.pem"), "tls_key": str(tmp_path / "k")})
    server = SiteFormsSmtpServer(ServerContext(intake=None, host="127.0.0.1", ports={"smtp": 0}), settings, None)
    with pytest.raises(PluginError, match="plugin 'siteforms': cannot use tls_cert"):
        server._tls_context()


async def test_a_taken_port_is_a_clear_start_up_error(perezvon_app, smtp):
    context = ServerContext(intake=perezvon_app.intake, host="127.0.0.1", ports={"smtp": smtp.port})
    second = SiteFormsSmtpServer(context, SiteFormsSettings().load({}), perezvon_app.settings)
    with pytest.raises(PluginError, match=f"plugin 'siteforms': cannot listen on 127.0.0.1:{smtp.port}"):
        await second.start()
    await second.stop()


async def test_stop_lets_a_message_being_stored_finish_and_ends_idle_sessions(
    perezvon_app, forms_site, new_phone, monkeypatch
):
    phone = new_phone()
    submit = perezvon_app.intake.submit

    async def slow_submit(*args, **kwargs):
        await asyncio.sleep(0.5)  # the lead is on its way to the database when the stop comes
        return await submit(*args, **kwargs)

    monkeypatch.setattr(perezvon_app.intake, "submit", slow_submit)
    async with smtp_server(perezvon_app) as server:
        idle = await Dialogue.open(server.port)
        sending = asyncio.create_task(
            send(server.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(phone)}"))
        )
        await asyncio.sleep(0.2)
    # leaving the block stopped the server while the message was being taken
    assert (await sending)["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.exists(connection_id=forms_site.id, phone=phone)
    assert await idle.reader.read() == b""  # the idle session was closed
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


# --- retention ------------------------------------------------------------------------------------------------


async def test_raw_messages_older_than_the_retention_are_deleted_and_the_rows_stay(forms_site):
    address = await technical_address(forms_site.id)
    now = dt.datetime.now(dt.UTC)
    ids = []
    for age_days in (31, 29):
        message = await InboundMessage.create(
            address=address,
            connection_id=forms_site.id,
            received_at=now - dt.timedelta(days=age_days),
            size=3,
            status=MessageStatus.NO_PHONE,
        )
        await RawMessage.create(message=message, received_at=message.received_at, content=b"old")
        ids.append(message.id)
    assert await purge_expired_raw(30, now=now) >= 1
    assert not await RawMessage.exists(message_id=ids[0]) and await RawMessage.exists(message_id=ids[1])
    assert await InboundMessage.filter(id__in=ids).count() == 2


# --- the parser on its own --------------------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "cp1251", "koi8-r"])
@pytest.mark.parametrize("label", [None, "utf-8", "windows-1251", "koi8-r", "x-unknown", "us-ascii"])
def test_text_is_decoded_whatever_its_label_says(charset, label):
    text = "Имя: Пётр Ильич\nТелефон: 8 912 345-67-89\nСообщение: перезвоните после обеда"
    assert decode_text(text.encode(charset), label) == text


def test_headers_in_any_encoding_come_out_on_one_line():
    split = "Привет".encode()  # naive encoders cut a character between two encoded words
    assert (
        decode_header_value(
            f"=?utf-8?B?{base64.b64encode(split[:3]).decode()}?=\r\n =?utf-8?B?{base64.b64encode(split[3:]).decode()}?="
        )
        == "Привет"
    )
    assert decode_header_value("=?KOI8-R?Q?=FA=C1=D1=D7=CB=C1?= #12") == "Заявка #12"
    raw_cp1251 = "Заявка с сайта".encode("cp1251").decode("ascii", "surrogateescape")
    assert decode_header_value(raw_cp1251) == "Заявка с сайта"
    assert decode_header_value("=?utf-8?Q?a=0D=0ABcc:_x?=") == "a Bcc: x"


def test_html_tables_become_label_value_lines_and_links_keep_their_url():
    text, links = html_to_text(
        "<style>td{}</style><table><tr><td><table><tr><th>Имя:</th><td>Анна</td></tr>"
        "<tr><td>Страница</td><td><a href='https://x.example/a?b=1&amp;c=2'>открыть</a></td></tr>"
        "</table></td></tr></table><p>Спасибо</p>"
    )
    assert text.splitlines() == ["Имя: Анна", "Страница: открыть (https://x.example/a?b=1&c=2)", "Спасибо"]
    assert links == ["https://x.example/a?b=1&c=2"]


def test_fields_in_the_shapes_cms_send_them():
    fields = extract_fields(
        textwrap.dedent("""\
        Ваше имя
        *******************************
        Сергей

        --- Телефон ---

        +7 916 123-45-67

        Сообщение:
        строка один
        строка два

        Дата - 14.03.2024
        Телефон - 8 800 000-00-00
        https://site.example/page
        """)
    )
    assert fields == [
        ("Ваше имя", "Сергей"),
        ("Телефон", "+7 916 123-45-67"),
        ("Сообщение", "строка один строка два"),
        ("Телефон", "8 800 000-00-00"),
    ]


def test_names_in_three_more_layouts_and_robots_in_from_are_no_names():
    def header_word(text: str) -> str:
        return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="

    def name_of(head: str, body: str, site_name: str = "Окна Мастер") -> str:
        form = parse_message(f"{head}Subject: x\r\n\r\n{body}".encode())
        site = SiteProfile(1, "t", ("okna-master.ru",), name=site_name)
        return match_lead(form, site).name

    # a label alone on its line, the value on the next (1C-Bitrix event templates)
    assert name_of("", "Ваше Имя\r\nЕкатерина Белова\r\n\r\nТелефон\r\n+7 916 583-27-40") == "Екатерина Белова"
    # "от посетителя: Имя <e-mail>" on one line (Joomla contact extensions)
    assert name_of("", "Сообщение от посетителя: Григорий Лебедев <g@ya.ru>\r\nТел. 8 915 204 77 31") == (
        "Григорий Лебедев"
    )
    # only the From header's display name carries it
    assert name_of(f"From: {header_word('Виктория Орлова')} <noreply@x.ru>\r\n", "Телефон: 8 903 118-64-25") == (
        "Виктория Орлова"
    )
    # ... but a robot's, a site builder's or the site's own name in From is nobody's name
    for sender in ("WordPress", "Tilda", "Сайт Автомир", "Заявка с сайта", "Окна Мастер", "okna-master.ru", "R2-D2"):
        assert name_of(f"From: {header_word(sender)} <robot@x.ru>\r\n", "Телефон: 8 903 118-64-25") == "", sender
    # a name field in the body still wins over all of them
    assert name_of(f"From: {header_word('Виктория Орлова')} <v@x.ru>\r\n", "Имя: Вика\r\nТелефон: 1") == "Вика"


def test_the_sites_own_number_is_not_the_visitors():
    form = parse_message(b"Subject: x\r\n\r\nCall us: +7 495 123-45-67. Me: 8 916 765 43 21\r\n")
    site = SiteProfile(1, "t", ("site.example",), own_phones=frozenset({"+74951234567"}))
    assert form.phones == ["+74951234567", "+79167654321"]
    assert match_lead(form, site).phone == "+79167654321"
    assert match_lead(parse_message(b"\r\nCall us: +7 495 123-45-67\r\n"), site).phone is None


def test_offices_match_by_the_longest_alternative_name_and_whole_words():
    site = SiteProfile(1, "t", ("s.example",), offices=((1, "Ленинский"), (2, "Ленинский-2"), (3, "Юг")))
    assert match_lead(parse_message(b"\r\n" + "Салон: ленинский-2".encode()), site).office_id == 2
    assert match_lead(parse_message(b"\r\n" + "Салон: Ленинский".encode()), site).office_id == 1
    assert match_lead(parse_message(b"\r\n" + "Город: Югорск".encode()), site).office_id is None


def test_attachments_are_ignored():
    raw = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\n'
        b"Hello\r\n--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n"
        b"Phone: +7 916 123-45-67\r\n--m--\r\n"
    )
    assert parse_message(raw).phones == []


def test_the_structure_guard_lets_form_mail_through():
    check_structure(_nested(40, "Content-Type: text/plain\r\n\r\nx"))
    with pytest.raises(MessageTooComplex):
        check_structure(_nested(60, "x"))


# --- real processes: `perezvon serve` and `perezvon smtp` ----------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_env(tmp_path: Path, plugins: Path | None = None) -> dict:
    env = {
        **os.environ,
        "PEREZVON_DATA_DIR": str(tmp_path / "var"),
        "PEREZVON_LOG_LEVEL": "WARNING",
        "PEREZVON_PLUGINS": str(plugins or ROOT / "tests" / "plugins.toml"),
    }
    for name in ("PEREZVON_DATABASE_URL", "PEREZVON_REDIS_URL"):  # SQLite and the embedded Redis in tmp_path
        env.pop(name, None)
    return env


def call_of_lead(tmp_path: Path, phone: str) -> str | None:
    database = tmp_path / "var" / "perezvon.sqlite3"
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        row = db.execute(
            "SELECT calls.id FROM calls JOIN leads ON leads.id = calls.lead_id "
            "WHERE leads.phone = ? AND leads.source = 'siteforms'",
            (phone,),
        ).fetchone()
    return row[0] if row else None


def wait_for_line(process: subprocess.Popen, text: str, seconds: float = 60) -> list[str]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return seen
    pytest.fail(f"no {text!r} from the process: {''.join(seen)}")


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("did not stop on Ctrl-C within 20 s")
    output = process.stdout.read()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    return output


def test_serve_takes_a_form_email_and_calls_the_visitor_back(tmp_path):
    env = cli_env(tmp_path)
    port, smtp_port = free_port(), free_port()
    env["PEREZVON_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*PERZVON, "serve", "--port", str(port), "--smtp-port", str(smtp_port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = "".join(wait_for_line(server, "Perezvon is running"))
        assert f"smtp on 127.0.0.1:{smtp_port} (site forms to @{DOMAIN})" in banner
        seeded = subprocess.run(
            [*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert seeded.returncode == 0, seeded.stderr
        demo = json.loads(seeded.stdout)
        local, _, domain = demo["technical_email"].partition("@")
        assert domain == DOMAIN and len(local) == 32

        raw = (
            (CORPUS / "wordpress_cf7.eml")
            .read_bytes()
            .replace(CORPUS_SITES["sites"]["avtomir-demo.ru"]["technical_address"].encode(), local.encode())
        )
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            assert client.sendmail("wordpress@avtomir-demo.ru", [demo["technical_email"]], raw) == {}
        call_id = call_of_lead(tmp_path, "+79854072693")
        assert call_id, "the 250 came before the lead was stored"
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + 30
            state_url = f"http://127.0.0.1:{port}/api/v1/calls/{call_id}/state"
            while not (state := http.get(state_url, params={"token": demo["site_token"]}).json())["finished"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
        assert state["status"] == "successful"
        # ... and after the call, the notification e-mail (no relay here: the mail plugin's outbox)
        outbox = Path(demo["outbox"])
        deadline = time.monotonic() + 30
        while not (sent := sorted(outbox.glob(f"*call_succeeded-{call_id}.eml"))):
            assert time.monotonic() < deadline, "no notification e-mail after the call"
            time.sleep(0.1)
        notice = email.message_from_bytes(sent[0].read_bytes(), policy=email.policy.default)
        assert notice["To"] == "demo@example.com"
        assert "+7 985 407-26-93" in notice.get_body(preferencelist=("plain",)).get_content()
    finally:
        output = stop(server)
    assert "Perezvon stopped." in output
    with pytest.raises(OSError):  # the SMTP server stopped with everything else
        smtplib.SMTP("127.0.0.1", smtp_port, timeout=2)


def test_perezvon_smtp_alone_answers_with_starttls(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(
        f"[plugins.simulator]\nenabled = true\n[plugins.siteforms]\nenabled = true\n"
        f'domain = "{DOMAIN}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    )
    env = cli_env(tmp_path, plugins)
    demo = json.loads(
        subprocess.run(
            [*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
        ).stdout
    )
    smtp_port = free_port()
    process = subprocess.Popen(
        [*PERZVON, "smtp", "--smtp-port", str(smtp_port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = "".join(wait_for_line(process, "Perezvon SMTP intake is running"))
        assert f"smtp on 127.0.0.1:{smtp_port} (site forms to @{DOMAIN}, STARTTLS)" in banner
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            assert client.ehlo()[0] == 250 and client.has_extn("starttls")
            client.starttls(context=ssl._create_unverified_context())  # noqa: S323 - a self-signed test cert
            raw = form_email(demo["technical_email"], "Имя: Вера\nТелефон: 8 916 432-10-98")
            assert client.sendmail("robot@localhost", [demo["technical_email"]], raw) == {}
            assert client.mail("robot@localhost")[0] == 250
            assert client.rcpt(f"nobody@{DOMAIN}")[0] == 550
        assert call_of_lead(tmp_path, "+79164321098")
    finally:
        stop(process)


# --- the connection's admin page, over real HTTP ---------------------------------------------------------------


@pytest.fixture
async def live_admin(perezvon_app):
    """The web app on a real port, in the test's event loop; yields an HTTP client for it."""
    from live_helpers import live_server

    from perezvon.web.app import create_app

    app = create_app(perezvon_app, manage_lifecycle=False)
    async with live_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        yield client


async def signed_in(client, connection, level: str = "edit") -> str:
    """A user with ``level`` on the connection's project, signed in, Russian; returns the CSRF token."""
    from test_admin_helpers import login, make_user

    project = await Project.get(id=connection.project_id)
    csrf = await login(client, await make_user(level=level, project=project))
    client.cookies.set("pz_lang", "ru")
    return csrf


def panel_of(page: str) -> str:
    start = page.index('id="panel-siteforms"')
    return page[start : page.index("</section>", start)]


async def test_the_connections_page_shows_the_technical_address_and_the_kept_messages(
    live_admin, smtp, forms_site, new_phone
):
    await signed_in(live_admin, forms_site, level="view")
    page = await live_admin.get(f"/connections/{forms_site.id}")
    assert page.status_code == 200
    panel = panel_of(page.text)
    assert f'<code id="siteforms-address">{forms_site.email}</code>' in panel
    assert 'class="js-copy" data-copy="siteforms-address"' in panel  # the copy button
    assert "Формы сайта по e-mail" in panel and "Нет: все письма пока стали заявками." in panel
    assert 'value="send_test"' not in panel  # viewing is not checking

    no_phone = form_email(forms_site.email, "Имя: Вера\nПодпишите меня на новости", subject="Подписка")
    assert (await send(smtp.port, [forms_site.email], no_phone, sender="news@site.example"))["data"][0] == 250
    refused = form_email(forms_site.email, f"Телефон: {phone_text(new_phone())}", subject="Запись на сервис")
    await refused_by_switching_off(smtp.port, forms_site, refused)
    panel = panel_of((await live_admin.get(f"/connections/{forms_site.id}")).text)
    rows = panel.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    assert len(rows) == 2
    assert "robot@site.example" in rows[0] and "Запись на сервис" in rows[0]
    assert "Заявка отклонена: Обратные звонки для этого сайта были выключены." in rows[0]
    assert "news@site.example" in rows[1] and "Подписка" in rows[1]
    assert "Телефон не найден: В письме не найден номер телефона." in rows[1]
    assert "Формы сайта для этого подключения выключены" in panel  # the connection is off now

    live_admin.cookies.set("pz_lang", "en")
    panel = panel_of((await live_admin.get(f"/connections/{forms_site.id}")).text)
    assert "E-mails kept without a callback" in panel and "No phone number found in the message." in panel


async def test_send_a_test_email_reaches_the_smtp_intake_and_shows_the_result(live_admin, smtp, forms_site):
    csrf = await signed_in(live_admin, forms_site)
    page = await live_admin.get(f"/connections/{forms_site.id}")
    assert 'name="action" value="send_test"' in panel_of(page.text)
    answer = await live_admin.post(
        f"/connections/{forms_site.id}/apps/siteforms", data={"csrf_token": csrf, "action": "send_test"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/connections/{forms_site.id}"
    page = await live_admin.get(answer.headers["location"])
    assert (
        "Тестовое письмо пришло и разобрано как заявка: телефон +79990000000, имя «Проверка». "
        "Формы сайта работают; по тестовому письму не звоним." in page.text
    )
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.TEST and message.lead_id is None
    assert message.message_id.endswith("@forms.perezvon.test>")
    assert not await Lead.exists(connection_id=forms_site.id)  # a test rings nobody
    assert "Нет: все письма пока стали заявками." in panel_of(page.text)  # a test is not a kept message

    await enablement.switch(forms_site.id, enablement.APPLICATION, KEY, False)
    await live_admin.post(
        f"/connections/{forms_site.id}/apps/siteforms", data={"csrf_token": csrf, "action": "send_test"}
    )
    page = await live_admin.get(f"/connections/{forms_site.id}")
    assert "Формы сайта для этого подключения выключены, поэтому приёмник не принимает письма" in page.text


async def test_a_forged_check_header_is_an_ordinary_form(smtp, forms_site, new_phone):
    """Without the secret key nobody can make the intake skip a lead: a made-up header is a form."""
    phone = new_phone()
    raw = form_email(forms_site.email, f"Телефон: {phone_text(phone)}").replace(
        b"MIME-Version", b"X-Perezvon-Check: 0123.deadbeef\r\nMIME-Version", 1
    )
    assert (await send(smtp.port, [forms_site.email], raw))["data"] == (250, "2.0.0 OK: lead created")
    assert await Lead.exists(connection_id=forms_site.id, phone=phone)


async def test_the_test_email_says_when_the_intake_does_not_answer(perezvon_app, live_admin, forms_site, monkeypatch):
    """No SMTP intake in this process and none at check_host/check_port: a clear message, not a 500."""
    port = free_port()  # nothing listens there
    monkeypatch.setitem(perezvon_app.host.registry.applications[KEY].settings, "check_port", port)
    csrf = await signed_in(live_admin, forms_site)
    answer = await live_admin.post(
        f"/connections/{forms_site.id}/apps/siteforms", data={"csrf_token": csrf, "action": "send_test"}
    )
    assert answer.status_code == 303
    page = await live_admin.get(answer.headers["location"])
    assert f"SMTP-приёмник на 127.0.0.1:{port} не отвечает" in page.text


def test_every_text_of_the_plugin_is_in_russian():
    """The panel, the test e-mail's verdicts, the reasons in words: each msgid has its Russian text."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from perezvon.plugins.siteforms.texts import LOCALE_DIR

    plugin_dir = ROOT / "plugins" / "siteforms"
    # the modules that say things to people (elsewhere "text" is a parameter, which babel mistakes)
    method_map = [(f"{name}.py", "python") for name in ("check", "panel", "notify")]
    method_map.append(("**/templates/**.html", "jinja2"))
    options = {"**/templates/**": {"trim_blocks": "true", "lstrip_blocks": "true"}}
    used = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(plugin_dir), method_map, options, keywords={"text": None, "t": None}
        )
    }
    from perezvon.plugins.siteforms.panel import FIELDS, REFUSALS

    used |= set(REFUSALS.values()) | set(FIELDS.values()) | set(MessageStatus.LABELS.values())
    with open(LOCALE_DIR / "ru" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = {m.id: m.string for m in read_po(fh, locale="ru") if m.id}
    from perezvon.core.i18n import gettext

    assert len(used) > 40
    assert sorted(m for m in used if m not in catalog and gettext(m, "ru") == m) == []


@pytest.mark.parametrize(
    ("language", "subject", "lines"),
    [
        (
            "ru",
            "Письмо с формы сайта сохранено без звонка — Автосалон",
            ["Отправитель: robot@cars.example", "Причина: Телефон не найден: В письме не найден номер телефона."],
        ),
        (
            "en",
            "A site-form e-mail was kept without a callback — Автосалон",
            ["Sender: robot@cars.example", "Why: No phone found: No phone number found in the message."],
        ),
    ],
)
def test_the_mail_notifier_renders_a_kept_message(language, subject, lines):
    from perezvon.api import Notification
    from perezvon.plugins.mail.compose import Composer

    composer = Composer(language=language, public_url="https://perezvon.example", from_address="robot@perezvon.example")
    rendered = composer.render(
        Notification(
            kind="form_email_kept",
            recipients=("boss@example.com",),
            subject_id="m-1",
            data={
                "connection": {"name": "Автосалон", "domain": "cars.example", "timezone": "Europe/Moscow"},
                "message": {
                    "received_at": "2026-03-14T09:00:00+00:00",
                    "sender": "robot@cars.example",
                    "subject": "Заявка\r\nBcc: x@example.com",
                    "status": {"ru": "Телефон не найден", "en": "No phone found"},
                    "reason": {
                        "ru": "В письме не найден номер телефона.",
                        "en": "No phone number found in the message.",
                    },
                },
                "link": "https://perezvon.example/connections/7#panel-siteforms",
            },
        )
    )
    assert rendered.subject == subject
    for line in lines:
        assert line in rendered.text.splitlines(), line
    assert "Bcc: x@example.com" in rendered.text and "\nBcc:" not in rendered.text  # one line, no forged header
    assert 'href="https://perezvon.example/connections/7#panel-siteforms"' in rendered.html
