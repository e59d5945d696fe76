"""A mailed form with text no store can hold still makes its lead, cleaned (issue 13, item 4: the SMTP intake).

Nobody can be asked to correct a form a site's server mailed, so its fields are
cleaned (NULs dropped, broken characters replaced) rather than the lead refused;
the message is kept with its status, never a crash and never an endless 451.
"""

from __future__ import annotations

import pytest
from test_siteforms import DOMAIN, form_email, phone_text, send, smtp_server

from perezvon.core.models import Lead
from perezvon.core.storable import unstorable_values
from perezvon.plugins.siteforms.addresses import switch_on
from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus


@pytest.fixture
async def forms_site(perezvon_site):
    perezvon_site.email = await switch_on(perezvon_site, DOMAIN)
    return perezvon_site


async def test_a_form_with_nul_and_broken_bytes_makes_a_clean_lead(perezvon_app, forms_site, new_phone):
    phone = new_phone()
    body = f"Имя: Иван\x00Петров\nТелефон: {phone_text(phone)}\nКомментарий:\nстрока\x00один\nстрока два\n"
    raw = form_email(forms_site.email, body, subject="Заявка\x00с сайта")
    async with smtp_server(perezvon_app) as server:
        reply = await send(server.port, [forms_site.email], raw)
    assert reply["data"][0] == 250, reply
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.LEAD, message.error
    lead = await Lead.get(connection_id=forms_site.id, phone=phone)
    assert "\x00" not in lead.name and "Иван" in lead.name
    assert unstorable_values({"name": lead.name, "extra": lead.extra, "subject": message.subject}) == {}


async def test_what_the_parser_lets_through_is_cleaned_not_refused(perezvon_app, forms_site, new_phone, monkeypatch):
    """The parser already drops control characters; anything it lets through (here: a matching that
    yields a NUL and a lone surrogate) is cleaned before the intake, so the lead is stored."""
    import dataclasses

    from perezvon.plugins.siteforms import delivery

    real_match = delivery.match_lead

    def leaky_match(form, site):
        draft = real_match(form, site)
        return dataclasses.replace(draft, name="Иван\x00\ud800", page_url="https://x.example/\x00")

    monkeypatch.setattr(delivery, "match_lead", leaky_match)
    phone = new_phone()
    async with smtp_server(perezvon_app) as server:
        reply = await send(
            server.port, [forms_site.email], form_email(forms_site.email, f"Телефон: {phone_text(phone)}")
        )
    assert reply["data"][0] == 250, reply
    message = await InboundMessage.get(connection_id=forms_site.id)
    assert message.status == MessageStatus.LEAD, message.error
    lead = await Lead.get(connection_id=forms_site.id, phone=phone)
    assert lead.name == "Иван\ufffd" and lead.page_url == "https://x.example/"
