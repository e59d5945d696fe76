"""The visitor's follow-up by SMS (docs/sms.md): an integration a connection switches on.

* After a failed attempt when another one is scheduled: "Мы не смогли до вас дозвониться,
  перезвоним в HH:MM" -- the next attempt's time in the connection's time zone. Once per call.
* After a successful call: the "business card" (the company's name, site and phone), once per
  call and at most once per number and connection within ``card_period_days``.

Only to leads with consent (:func:`has_consent`), never to a number that opted out, never twice
(:mod:`perezvon.plugins.sms.sending`). The handlers run as the core's delivery jobs, so a
provider's temporary refusal is retried with back-off and every try is stored with the call.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates

from perezvon.api import (
    LOCALES,
    Application,
    CallEvent,
    CheckFailed,
    CheckMessage,
    Connection,
    HttpPush,
    Integration,
    compiled_translations,
)
from perezvon.plugins.sms.models import SentSms, SentState
from perezvon.plugins.sms.providers import PROVIDERS, ProviderSettings, provider_for
from perezvon.plugins.sms.sending import opted_out, recipient, send_once, utcnow

LOCALE_DIR = Path(__file__).with_name("locales")
TEMPLATE_FIELDS = ("company", "site", "phone", "time")
#: the default texts, English msgids; the Russian ones are in the plugin's catalog
FAILED_TEXT = "We could not reach you, we will call you back at {time}. {company}"
CARD_TEXT = "Thank you for your call! {company}, {site}, {phone}"
STOP_TEXT = "Unsubscribe: {link}"
#: lead sources whose form has our consent checkbox (no lead without it ticked): the site apps.
#: The site forms' leads (a site's own form, e-mailed) and API leads carry no consent of ours;
#: an API lead may state it with ``extra.sms_consent = true``.
CONSENT_SOURCES = frozenset({"widget", "leadgen", "mobileleadgen", "mobilepanel", "slider", "tradein"})
NOT_CONSENTED = frozenset({"siteforms"})
FOLLOWUP, CARD = "followup", "card"
EMPTY_PARTS = re.compile(r"(?:,\s*)+(?=[,.!]|$)|^\s*,\s*")


def text(message: str, locale: str) -> str:
    return compiled_translations(LOCALE_DIR, locale).gettext(message)


def has_consent(lead: Mapping[str, Any], applications: Mapping[str, Application]) -> bool:
    """Whether the visitor agreed to be written to (docs/sms.md, "Consent").

    The lead stores no consent flag: every lead the intake takes had ``consent: true``, which
    is consent to the processing of personal data. Messages go to leads left through one of
    our site apps' forms with the consent checkbox (:data:`CONSENT_SOURCES`, and any other
    app's form but the site forms' e-mail intake), or whose sender set ``extra.sms_consent``.
    """
    extra = lead.get("extra") or {}
    if isinstance(extra, dict) and isinstance(extra.get("sms_consent"), bool):
        return bool(extra["sms_consent"])
    source = str(lead.get("source") or "")
    if source in NOT_CONSENTED:
        return False
    app_sources = {app.lead_source for app in applications.values()}
    return source in CONSENT_SOURCES or source in app_sources


def check_template(value: str) -> None:
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
    except ValueError:
        names = ["?"]
    if any(name not in TEMPLATE_FIELDS for name in names):
        raise ValidationError("Only {company}, {site}, {phone} and {time} may stand in braces.")


class FollowUpSettings(ProviderSettings):
    """A connection's follow-up; its provider fields override the deployment's when set."""

    provider = fields.String(
        load_default="deployment",
        validate=validate.OneOf(
            ("deployment", *PROVIDERS[1:]), labels=("The deployment's (plugins.toml)", "SMS.ru", "SMSC", "HTTP gateway")
        ),
        metadata={"label": "SMS provider", "help": "Where the messages are sent from"},
    )
    after_failed_attempt = fields.Boolean(
        load_default=True, metadata={"label": "After a failed attempt", "help": "We could not reach you, ..."}
    )
    failed_template = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"label": "Text after a failed attempt", "help": "Empty: the standard text. {time}: the next call"},
    )
    business_card = fields.Boolean(
        load_default=True,
        metadata={"label": "Business card after a successful call", "help": "The company's name, site and phone"},
    )
    card_template = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"label": "Business card text", "help": "Empty: the standard text. {company}, {site}, {phone}"},
    )
    card_period_days = fields.Integer(
        load_default=30,
        validate=validate.Range(min=1, max=365),
        metadata={"label": "Business card once per (days)", "help": "Not again to the same number within this time"},
    )
    company = fields.String(
        load_default="",
        validate=validate.Length(max=100),
        metadata={"label": "Company name", "help": "Empty: the project's name"},
    )
    site = fields.String(
        load_default="", validate=validate.Length(max=100), metadata={"label": "Site", "help": "Empty: the domain"}
    )
    phone = fields.String(
        load_default="",
        validate=validate.Length(max=40),
        metadata={"label": "Company phone", "help": "Empty: the number shown on the site"},
    )
    language = fields.String(
        load_default="ru",
        validate=validate.OneOf(LOCALES, labels=("Russian", "English")),
        metadata={"label": "Language of the standard texts"},
    )
    opt_out_link = fields.Boolean(
        load_default=True,
        metadata={"label": "Add an unsubscribe link", "help": "A short link that stops our messages to the number"},
    )

    @validates("failed_template")
    def _failed(self, value: str, **_: Any) -> None:
        check_template(value)

    @validates("card_template")
    def _card(self, value: str, **_: Any) -> None:
        check_template(value)


class SmsFollowUp(Integration):
    key = "sms"
    title = "SMS to the visitor"
    summary = "An SMS after a failed attempt with the time of the next call, and a business card after a call."
    description = (
        "Off by default. After a failed attempt, when another one is scheduled, the visitor gets "
        '"We could not reach you, we will call you back at HH:MM" (once per call); after a successful call, '
        "a business card with the company's name, site and phone. Only to visitors who left the number "
        "through a form with the consent checkbox; never to a number that unsubscribed. The provider is the "
        "deployment's (plugins.toml [plugins.sms]) unless the connection sets its own."
    )
    settings_schema = FollowUpSettings

    def __init__(
        self,
        deployment: Mapping[str, Any],
        public_url: str,
        applications: Mapping[str, Application] | None = None,
    ) -> None:
        self.deployment = dict(deployment)
        self.public_url = public_url.rstrip("/")
        self.applications = applications if applications is not None else {}
        self.http = HttpPush()

    def provider_settings(self, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.deployment if settings.get("provider", "deployment") == "deployment" else settings

    async def check(self, settings: dict[str, Any]) -> None:
        """The provider's balance read with the credentials in use (docs/sms.md, "Check"); a refusal of
        the deployment's credentials (plugins.toml) is shown on the provider field, the only one of this page."""
        try:
            await provider_for(self.provider_settings(settings), self.http).check()
        except CheckFailed as refused:
            if settings.get("provider", "deployment") != "deployment":
                raise
            errors: dict[str, list[CheckMessage]] = {}
            for field, messages in refused.errors.items():
                errors.setdefault(field if field == CheckFailed.NOT_A_FIELD else "provider", []).extend(messages)
            raise CheckFailed(errors) from None

    async def _send(self, event: CallEvent, kind: str, template: str, when: dt.datetime | None) -> str | None:
        lead, settings = event.lead, event.settings
        phone = str(lead.get("phone") or "")
        connection_id = event.connection_id
        if not phone:
            return None
        if not has_consent(lead, self.applications):
            return "skipped: no consent to messages"
        if await opted_out(connection_id, phone):
            return "skipped: the number unsubscribed"
        if kind == CARD and await self._card_sent_recently(event, phone):
            return "skipped: a business card was sent to this number recently"
        connection = await Connection.get(id=connection_id).prefetch_related("project")
        locale = settings.get("language", "ru")
        zone = _zone(connection.timezone)
        values = {
            "company": settings.get("company") or connection.project.name or connection.name,
            "site": settings.get("site") or connection.domain,
            "phone": settings.get("phone") or lead.get("displayed_phone") or "",
            "time": when.astimezone(zone).strftime("%H:%M") if when else "",
        }
        body = (template or text(FAILED_TEXT if kind == FOLLOWUP else CARD_TEXT, locale)).format(**values)
        body = EMPTY_PARTS.sub("", " ".join(body.split()))  # "{site}, {phone}" with no phone: no dangling comma
        if settings.get("opt_out_link", True):
            row = await recipient(connection_id, phone)
            link = f"{self.public_url}/p/sms/stop/{row.token}"
            body = f"{body} {text(STOP_TEXT, locale).format(link=link)}"
        provider = provider_for(self.provider_settings(settings), self.http)
        key = f"{kind}:{event.call['id']}"
        return await send_once(provider, key, connection_id=connection_id, kind=kind, phone=phone, text=body)

    async def _card_sent_recently(self, event: CallEvent, phone: str) -> bool:
        since = utcnow() - dt.timedelta(days=int(event.settings.get("card_period_days", 30)))
        return (
            await SentSms.filter(
                connection_id=event.connection_id, phone=phone, kind=CARD, state=SentState.SENT, created_at__gte=since
            )
            .exclude(key=f"{CARD}:{event.call['id']}")
            .exists()
        )

    async def on_attempt_finished(self, event: CallEvent) -> str | None:
        """A failed attempt with another one scheduled: the visitor learns when we call again."""
        if not event.settings.get("after_failed_attempt", True) or event.attempt is None:
            return None
        attempt, call = event.attempt, event.call
        if attempt.get("display_status") == "successful":
            return None
        number = attempt.get("number")
        if any(a.get("number", 0) > number for a in event.attempts):
            return "skipped: the next attempt has already started"
        due = _when(call.get("next_attempt_at"))
        if call.get("state") != "scheduled" or call.get("attempts_made") != number or due is None:
            return "skipped: no other attempt is scheduled"
        if due <= utcnow():
            return "skipped: the next attempt is due already"
        return await self._send(event, FOLLOWUP, event.settings.get("failed_template", ""), due)

    async def on_call_finished(self, event: CallEvent) -> str | None:
        """A successful call: the business card."""
        if not event.settings.get("business_card", True):
            return None
        if event.call.get("display_status") != "successful":
            return None
        return await self._send(event, CARD, event.settings.get("card_template", ""), None)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("Europe/Moscow")


def _when(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
