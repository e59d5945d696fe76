"""From a :class:`~perezvon.api.Notification` to an e-mail message.

Everything a visitor typed (a name, a page URL, UTM tags) reaches these
messages. It is made safe here, once, before any template sees it: control
characters and line breaks become spaces (so no value can start a new header
or fake a line of the body), long values are cut, and only ``http(s)`` URLs
become links. The HTML templates escape everything on top of that (Jinja2
autoescape).

The templates are under ``templates/mail/``; their English message ids are
translated with the plugin's own catalog (``locales/<lang>/LC_MESSAGES``).
Statuses and reasons of calls are the core's message ids and are translated
with :func:`perezvon.api.gettext`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import gettext as gettext_module
import re
import secrets
import unicodedata
from collections.abc import Mapping
from email.charset import Charset
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import SMTP, compat32
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from perezvon.api import LOCALES, DeliveryError, Notification, compiled_translations, gettext


class _HeaderClasses(HeaderRegistry):
    """The standard library's header registry, except that it makes each kind of header's class once.

    ``HeaderRegistry`` builds a new class (``type(...)``) for every header it reads or
    sets: about twenty per e-mail. A class always refers to itself (its ``__mro__``), so
    each one waits for the garbage collector; in a burst of 1,000 ending calls the
    collector then freed ~20,000 such objects every second or two, 20 ms a pass, on the
    event loop that also dials (BENCHMARKS.md "Reach burst").
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


#: SMTP's policy (CRLF line ends), with the header classes made once
MAIL_POLICY = SMTP.clone(header_factory=_HeaderClasses())
#: the older API's policy with CRLF line ends, for the messages of :meth:`Composer.message`
WIRE_POLICY = compat32.clone(linesep="\r\n")

LOCALE_DIR = Path(__file__).with_name("locales")
#: the core's default time zone of a connection; used where a message has no site to take one from
DEFAULT_TIMEZONE = "Europe/Moscow"

CALL_SUCCEEDED = "call_succeeded"
CALL_FAILED = "call_failed"
LEAD_DELAYED = "lead_delayed"
ACTIVATION = "activation"
SITE_SNIPPET = "site_snippet"
#: a site-form e-mail kept without a callback (no phone in it, or refused): the siteforms plugin's
FORM_EMAIL_KEPT = "form_email_kept"
#: a site's daily or weekly digest, and a problem alert: the reports plugin's (docs/notifications.md)
DIGEST = "digest"
PROBLEM = "problem"
#: kinds about a visitor's lead: they carry its details, the site's time zone and a link to the call
ABOUT_LEADS = (CALL_SUCCEEDED, CALL_FAILED, LEAD_DELAYED)
#: kinds sent at most once per subject (a call, a kept e-mail): the Message-ID is stable, so a re-run job
#: produces the same message, and the outbox keeps one file
ONCE_PER_SUBJECT = (CALL_SUCCEEDED, CALL_FAILED, LEAD_DELAYED, FORM_EMAIL_KEPT)
#: the keys of ``Notification.data`` each kind cannot do without (docs/mail.md has the whole contract)
REQUIRED_DATA = {
    CALL_SUCCEEDED: ("connection", "lead", "call", "attempts"),
    CALL_FAILED: ("connection", "lead", "call", "attempts"),
    LEAD_DELAYED: ("connection", "lead"),
    ACTIVATION: ("user", "link", "expires_at"),
    SITE_SNIPPET: ("connection", "snippet"),
    FORM_EMAIL_KEPT: ("connection", "message"),
    DIGEST: ("connection", "period", "totals", "by_source", "by_channel"),
    PROBLEM: ("problem",),
}

# Lengths at which visitor-supplied text is cut, by where it is shown.
SUBJECT_LIMIT = 160
NAME_IN_SUBJECT = 40
SITE_IN_SUBJECT = 60
NAME_LIMIT = 200
URL_TEXT_LIMIT = 300
URL_LIMIT = 2048
VALUE_LIMIT = 300
SNIPPET_LIMIT = 10_000

#: bidirectional-override characters: harmless to drop, and they can make an
#: address or a URL read differently from what it is
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def N_(message: str) -> str:
    """Marks a message id for extraction; it is translated where it is shown."""
    return message


CHANNEL_LABELS = {
    "direct": N_("direct visit"),
    "organic": N_("search engines"),
    "ads": N_("advertising"),
    "referral": N_("links from other sites"),
    "social": N_("social networks"),
}
PROBLEM_TITLES = {
    "telephony_unreachable": N_("Telephony is unreachable"),
    "operator_failing": N_("An operator number keeps failing"),
    "deliveries_failing": N_("Deliveries to an integration are failing"),
    "recording_quota": N_("Recording storage is nearly full"),
}
DIRECTION_LABELS = {
    "operator_first": N_("operator first"),
    "client_first": N_("client first"),
}
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class NotificationDataError(DeliveryError):
    """The notification lacks what its kind needs: a bug in whoever queued it, so no retry helps."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry=False)


# --- making visitor text safe ------------------------------------------------------


def _is_unsafe(char: str) -> bool:
    # Cc: the C0/C1 controls. CR, LF, VT, FF, FS..RS and NEL are line breaks to the
    # e-mail header policy, which refuses them, as it does Zl/Zp (U+2028, U+2029);
    # the other controls have no place in a name either.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def truncate(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with an ellipsis, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.7:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def one_line(value: Any, limit: int = VALUE_LIMIT) -> str:
    """One line of printable text: line breaks and control characters become spaces."""
    if value is None:
        return ""
    text = "".join(" " if _is_unsafe(ch) else ch for ch in str(value))
    return truncate(" ".join(text.split()), limit)


def multi_line(value: Any, limit: int) -> str:
    """Text that may keep its line breaks (a code snippet), with other controls removed."""
    lines = str(value or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = "\n".join("".join(ch for ch in line if ch == "\t" or not _is_unsafe(ch)).rstrip() for line in lines)
    return truncate(cleaned.strip("\n"), limit)


@dataclasses.dataclass(frozen=True)
class Link:
    """A URL shown as text; ``href`` is set only for http(s), so no ``javascript:`` link is ever made."""

    text: str
    href: str = ""


def link(value: Any) -> Link | None:
    url = one_line(value, URL_LIMIT)
    if not url:
        return None
    try:
        parts = urlsplit(url)
        safe = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    except ValueError:
        safe = False
    return Link(text=truncate(url, URL_TEXT_LIMIT), href=url if safe else "")


def format_phone(e164: Any) -> str:
    """``+79123456789`` -> ``+7 912 345-67-89``; anything unparsable is shown as it came."""
    text = one_line(e164, 40)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name or DEFAULT_TIMEZONE))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif value:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # the core stores UTC


# --- translations and templates -------------------------------------------------------


def translations(locale: str) -> gettext_module.NullTranslations:
    """The plugin's catalog for ``locale``, compiled in memory from its .po file."""
    return compiled_translations(LOCALE_DIR, locale)


@functools.cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("perezvon.plugins.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # the templates ship with the package: no stat() of each file at every message (a restart
        # picks up an edited template)
        auto_reload=False,
    )
    # a method the i18n extension adds, so not in Environment's type
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


#: UTF-8 written as it is ("8bit"), as the newer API writes text of short lines: the outbox stays readable
_UTF8_AS_IT_IS = Charset("utf-8")
_UTF8_AS_IT_IS.body_encoding = None  # type: ignore[assignment]  # None: no transfer encoding (email.charset)
_UTF8_IN_BASE64 = Charset("utf-8")
#: RFC 5322 section 2.1.1: no line of a message over 998 octets
LINE_LIMIT = 998


def _text_part(text: str, subtype: str, *, as_it_is: bool) -> MIMENonMultipart:
    """A text part in UTF-8: as it is when asked and every line fits the line limit, else in base64."""
    fits = as_it_is and all(len(line.encode()) <= LINE_LIMIT for line in text.splitlines())
    part = MIMENonMultipart("text", subtype, policy=WIRE_POLICY)
    part.set_payload(text, _UTF8_AS_IT_IS if fits else _UTF8_IN_BASE64)
    del part["MIME-Version"]  # the message says it once
    return part


def _encoded(name: str, value: str) -> Any:
    """A header's value for the older API: as it is when ASCII, else RFC 2047 words (an ``email.header.Header``)."""
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


def _single_address(value: str) -> Address:
    header = MAIL_POLICY.header_factory("From", value)
    return header.addresses[0]


def _as_header(address: Address) -> str:
    if not address.addr_spec.isascii():
        return ""
    return formataddr((address.display_name, address.addr_spec), charset="utf-8")


class Composer:
    """Renders notifications (in the deployment's language unless one asks for another) and builds
    the messages that carry them."""

    def __init__(
        self,
        *,
        language: str,
        public_url: str,
        from_address: str,
        reply_to: str = "",
        lead_sources: Mapping[str, Any] | None = None,
    ) -> None:
        self.language = language
        self.public_url = public_url.rstrip("/")
        self.from_address = from_address
        self.reply_to = reply_to
        #: the registry's lead sources (filled by every plugin at start-up), for the source's title
        self.lead_sources = lead_sources if lead_sources is not None else {}
        # the addresses parsed once; as headers of the older API (:meth:`message`): a display name
        # encoded (RFC 2047) when it is not ASCII, "" when the address itself is not ASCII
        self._sender = _single_address(from_address)
        self._sender_header = _as_header(self._sender)
        self._reply_to_header = _as_header(_single_address(reply_to)) if reply_to else ""
        self._older_api_writes_the_sender = bool(self._sender_header) and (not reply_to or bool(self._reply_to_header))

    # --- the message ----------------------------------------------------------------------

    def locale_for(self, notification: Notification) -> str:
        """The deployment's language, unless the notification asks for one (e.g. a user's own)."""
        wanted = notification.data.get("locale")
        return wanted if wanted in LOCALES else self.language

    def message(self, notification: Notification, recipients: list[str], *, readable: bool = True) -> Message:
        """The MIME message (multipart/alternative: text, then HTML) for ``recipients``; ``readable``:
        its text in UTF-8 as it is (8bit), for a file someone may read, else in base64, which
        every relay takes (8-bit text needs the relay's 8BITMIME).

        Built with the standard library's older API (``email.mime``, the compat32 policy):
        the same RFC 5322 message for 0.4-0.9 ms of CPU where :class:`EmailMessage` took 3 ms,
        most of it parsing every header when set and refolding it when written; a worker
        writes one for every call that ends (BENCHMARKS.md, "Prepared reads and lighter
        e-mails"). That API writes a header as it is given, so a non-ASCII address, which
        it cannot encode, goes through :class:`EmailMessage` instead.
        """
        if not self._older_api_writes_the_sender or not all(address.isascii() for address in recipients):
            return self._message_of_the_new_api(notification, recipients)
        rendered = self.render(notification)
        message = MIMEMultipart("alternative", policy=WIRE_POLICY)
        message["Subject"] = _encoded("Subject", rendered.subject)
        message["From"] = self._sender_header
        message["To"] = ", ".join(recipients)
        if self._reply_to_header:
            message["Reply-To"] = self._reply_to_header
        for name, value in self._headers(notification):
            message[name] = _encoded(name, value)
        message.attach(_text_part(rendered.text, "plain", as_it_is=readable))
        message.attach(_text_part(rendered.html, "html", as_it_is=readable))
        return message

    def _headers(self, notification: Notification) -> list[tuple[str, str]]:
        """The headers after the addresses, the same in either API."""
        return [
            ("Date", format_datetime(notification.created_at.astimezone(dt.UTC))),
            ("Message-ID", self.message_id(notification)),
            # RFC 3834: no out-of-office or other automatic replies to a robot
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "All"),
            ("X-Perezvon-Kind", notification.kind),
            ("X-Perezvon-Subject-Id", one_line(notification.subject_id, 100)),
            ("Content-Language", self.locale_for(notification)),
        ]

    def _message_of_the_new_api(self, notification: Notification, recipients: list[str]) -> EmailMessage:
        rendered = self.render(notification)
        message = EmailMessage(policy=MAIL_POLICY)
        message["Subject"] = rendered.subject
        message["From"] = self.from_address
        message["To"] = ", ".join(recipients)
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        message.set_content(rendered.text, charset="utf-8")
        message.add_alternative(rendered.html, subtype="html", charset="utf-8")
        for name, value in self._headers(notification):  # after: set_content drops Content-* headers
            message[name] = value
        return message

    def message_id(self, notification: Notification) -> str:
        domain = self._sender.domain or "localhost"
        subject = file_safe(notification.subject_id)
        if notification.kind in ONCE_PER_SUBJECT:
            return f"<{notification.kind}.{subject}@{domain}>"
        stamp = notification.created_at.strftime("%Y%m%d%H%M%S")
        return f"<{notification.kind}.{subject}.{stamp}.{secrets.token_hex(4)}@{domain}>"

    @property
    def envelope_sender(self) -> str:
        return self._sender.addr_spec

    # --- rendering ------------------------------------------------------------------------

    def render(self, notification: Notification) -> Rendered:
        kind, data = notification.kind, notification.data
        if kind not in REQUIRED_DATA:
            raise NotificationDataError(f"unknown notification kind {kind!r}")
        missing = [key for key in REQUIRED_DATA[kind] if data.get(key) is None]
        if missing:
            raise NotificationDataError(f"a {kind} notification needs {', '.join(missing)} in its data")
        locale = self.locale_for(notification)
        build = {
            CALL_SUCCEEDED: self._call_context,
            CALL_FAILED: self._call_context,
            LEAD_DELAYED: self._lead_delayed_context,
            ACTIVATION: self._activation_context,
            SITE_SNIPPET: self._site_snippet_context,
            FORM_EMAIL_KEPT: self._form_email_kept_context,
            DIGEST: self._digest_context,
            PROBLEM: self._problem_context,
        }[kind]
        context = build(data, locale)
        about_leads = kind in ABOUT_LEADS
        context.update(lang=locale, about_leads=about_leads, timezone_note=context.get("timezone_note", about_leads))
        env = environment(locale)
        name = f"mail/{notification.kind}"
        subject = env.get_template(f"{name}.subject.txt").render(context)
        return Rendered(
            subject=one_line(subject, SUBJECT_LIMIT),
            text=env.get_template(f"{name}.txt").render(context),
            html=env.get_template(f"{name}.html").render(context),
        )

    def _call_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        connection, lead, call = data["connection"], data["lead"], data["call"]
        tz = zone(connection.get("timezone"))
        chain = sorted(data["attempts"], key=lambda attempt: attempt.get("number") or 0)
        return {
            **self._site_context(connection, tz, parse_time(lead.get("created_at"))),
            "lead": self._lead_view(lead, data, tz, locale),
            "call": self._call_view(call, tz, locale),
            "attempts": [self._attempt_view(attempt, tz, locale) for attempt in chain],
            "call_url": self._call_url(call.get("id")),
            "recording": link(data.get("recording_url")),
        }

    def _lead_delayed_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        connection, lead = data["connection"], data["lead"]
        call = data.get("call") or {}
        tz = zone(connection.get("timezone"))
        delay = data.get("delay_seconds")
        return {
            **self._site_context(connection, tz, parse_time(lead.get("created_at"))),
            "lead": self._lead_view(lead, data, tz, locale),
            "delay_seconds": int(delay) if isinstance(delay, (int, float)) else None,
            # why nobody was called when it is not the delay (no operator number, no working day)
            "reason": gettext(one_line(data.get("reason")), locale) if data.get("reason") else "",
            "call_url": self._call_url(call.get("id")),
        }

    def _activation_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        user = data["user"]
        activation = link(data["link"])
        if activation is None or not activation.href:
            raise NotificationDataError("an activation link must be an http(s) URL")
        expires = parse_time(data["expires_at"])
        if expires is None:
            raise NotificationDataError("activation 'expires_at' must be an ISO 8601 time")
        tz = zone(data.get("timezone"))
        return {
            "user": {
                "first_name": one_line(user.get("first_name"), 100),
                "phone": format_phone(user.get("phone")),
                "email": one_line(user.get("email"), 254),
            },
            "link": activation,
            # the same one-time link resets a forgotten password: the message then says so
            "reset": bool(data.get("reset")),
            "expires_at": self._time(expires, tz, locale),
            "timezone": _zone_label(tz, expires),
        }

    def _site_snippet_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        connection, snippet = data["connection"], data["snippet"]
        user = data.get("user") or {}
        return {
            **self._site_context(connection, zone(connection.get("timezone")), None),
            "snippet": multi_line(snippet, SNIPPET_LIMIT),
            "instructions": link(data.get("instructions_url")),
            "user": {"first_name": one_line(user.get("first_name"), 100)},
        }

    def _form_email_kept_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        connection, message = data["connection"], data["message"]
        tz = zone(connection.get("timezone"))
        received = parse_time(message.get("received_at"))

        def in_language(value: Any) -> str:
            """A text the sender gave in every language (``{"ru": ..., "en": ...}``), or one text."""
            if isinstance(value, Mapping):
                value = value.get(locale) or value.get("en") or ""
            return one_line(value, VALUE_LIMIT)

        return {
            **self._site_context(connection, tz, received),
            "message": {
                "received_at": self._time(received, tz, locale),
                "sender": one_line(message.get("sender"), 320),
                "subject": one_line(message.get("subject"), VALUE_LIMIT),
                "status": in_language(message.get("status")),
                "reason": in_language(message.get("reason")),
            },
            "link": link(data.get("link")),
            "note": in_language(data.get("note")),
        }

    def _digest_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        connection, period, totals = data["connection"], data["period"], data["totals"]
        tr = translations(locale)
        tz = zone(connection.get("timezone"))
        start, end = parse_time(period.get("from")), parse_time(period.get("to"))
        if start is None or end is None:
            raise NotificationDataError("a digest's period needs 'from' and 'to' as ISO 8601 times")
        first, last = start.astimezone(tz).date(), (end.astimezone(tz) - dt.timedelta(seconds=1)).date()
        weekly = period.get("kind") == "weekly"
        if weekly:
            label = tr.gettext("the week of %(first)s to %(last)s") % {
                "first": babel_date(first, "d MMMM", locale=locale),
                "last": babel_date(last, "d MMMM y", locale=locale),
            }
        else:
            label = babel_date(first, "d MMMM y", locale=locale)

        def count(value: Any) -> int:
            return int(value) if isinstance(value, (int, float)) else 0

        def channel(key: Any) -> str:
            return tr.gettext(CHANNEL_LABELS[key]) if key in CHANNEL_LABELS else one_line(key, 40)

        return {
            **self._site_context(connection, tz, start),
            "weekly": weekly,
            "period": label,
            "totals": {key: count(totals.get(key)) for key in ("calls", "handled", "lost")},
            "by_source": [
                {
                    "title": gettext(one_line(row.get("title") or row.get("source"), 100), locale),
                    "calls": count(row.get("calls")),
                    "handled": count(row.get("handled")),
                }
                for row in data["by_source"]
            ],
            "by_channel": [
                {
                    "title": channel(row.get("channel")),
                    "calls": count(row.get("calls")),
                    "handled": count(row.get("handled")),
                }
                for row in data["by_channel"]
            ],
            "dashboard": link(data.get("dashboard_url")),
            "preferences_url": self.preferences_url,
        }

    def _problem_context(self, data: Mapping[str, Any], locale: str) -> dict[str, Any]:
        tr = translations(locale)
        problem = data["problem"]
        code = one_line(problem.get("code"), 40)
        details = problem.get("details") or {}
        connection = data.get("connection")
        tz = zone(connection.get("timezone")) if connection else zone(DEFAULT_TIMEZONE)
        since = parse_time(details.get("since"))
        site = (
            self._site_context(connection, tz, since)
            if connection
            else {"site": None, "timezone": _zone_label(tz, since)}
        )
        statuses = details.get("statuses") or []
        return {
            **site,
            "code": code,
            "title": tr.gettext(PROBLEM_TITLES[code]) if code in PROBLEM_TITLES else code,
            "details": {
                "reason": one_line(details.get("reason"), VALUE_LIMIT),
                "operator_number": format_phone(details.get("operator_number"))
                if details.get("operator_number")
                else "",
                "failures": int(details.get("failures") or 0),
                "statuses": ", ".join(str(s) for s in statuses if isinstance(s, int)),
                "last_reason": gettext(one_line(details.get("last_reason")), locale)
                if details.get("last_reason")
                else "",
                "integration": gettext(one_line(details.get("title") or details.get("integration"), 100), locale),
                "since": self._time(since, tz, locale),
                "last_error": one_line(details.get("last_error"), VALUE_LIMIT),
                "last_status": details.get("last_status") if isinstance(details.get("last_status"), int) else None,
                "used": one_line(details.get("used"), 40),
                "limit": one_line(details.get("limit"), 40),
            },
            "link": link(data.get("url")),
            "preferences_url": self.preferences_url,
            "timezone_note": bool(since),
        }

    @property
    def preferences_url(self) -> str:
        # the reports plugin's page of a user's own digest and alert choices (docs/notifications.md)
        return f"{self.public_url}/p/reports/preferences"

    # --- pieces -------------------------------------------------------------------------------

    def _site_context(self, connection: Mapping[str, Any], tz: ZoneInfo, moment: dt.datetime | None) -> dict[str, Any]:
        domain = one_line(connection.get("domain"), 253)
        name = one_line(connection.get("name"), 200)
        return {
            "site": {
                "name": name or domain,
                "domain": domain,
                "label": f"{name} ({domain})" if name and name != domain else domain,
                "short_name": truncate(name or domain, SITE_IN_SUBJECT),
            },
            "timezone": _zone_label(tz, moment),
        }

    def _lead_view(self, lead: Mapping[str, Any], data: Mapping[str, Any], tz: ZoneInfo, locale: str) -> dict[str, Any]:
        tr = translations(locale)
        name = one_line(lead.get("name"), NAME_LIMIT)
        masked = bool(data.get("contacts_masked"))  # the recipient may not see the client's contacts
        phone = one_line(lead.get("phone"), 40) if masked else format_phone(lead.get("phone"))
        short_name = truncate(name, NAME_IN_SUBJECT)
        source = self.lead_sources.get(lead.get("source") or "")
        source_title = getattr(source, "title", None) or lead.get("source")
        channel = lead.get("channel")
        return {
            "name": name,
            "phone": phone,
            "phone_href": "" if masked else "tel:" + re.sub(r"[^0-9+]", "", str(lead.get("phone") or "")),
            # "who" in a subject: the phone first, so a long name can never hide it
            "who": f"{phone}, {short_name}" if short_name else phone,
            "office": one_line((data.get("office") or {}).get("name"), 200),
            "department": one_line((data.get("department") or {}).get("name"), 200),
            "created_at": self._time(parse_time(lead.get("created_at")), tz, locale),
            "preferred_at": self._time(parse_time(lead.get("preferred_at")), tz, locale),
            "page": link(lead.get("page_url")),
            "referrer": link(lead.get("referrer")),
            "utm": [(field, one_line(lead.get(field), VALUE_LIMIT)) for field in UTM_FIELDS if lead.get(field)],
            "channel": tr.gettext(CHANNEL_LABELS[channel]) if channel in CHANNEL_LABELS else one_line(channel, 40),
            "source": gettext(one_line(source_title, 100), locale) if source_title else "",
            "displayed_phone": one_line(lead.get("displayed_phone"), 40),
        }

    def _call_view(self, call: Mapping[str, Any], tz: ZoneInfo, locale: str) -> dict[str, Any]:
        tr = translations(locale)
        tags = []
        if call.get("is_unique") is not None:
            tags.append(tr.gettext("unique") if call["is_unique"] else tr.gettext("repeat"))
        if call.get("is_target") is not None:
            tags.append(tr.gettext("target") if call["is_target"] else tr.gettext("non-target"))
        return {
            "successful": call.get("display_status") == "successful",
            "status": first_upper(gettext(one_line(call.get("display_status"), 40), locale)),
            "reason": first_upper(gettext(one_line(call.get("reason")), locale)),
            "talk_seconds": int(call.get("duration_seconds") or 0),
            "talk_time": self._duration(call.get("duration_seconds") or 0, locale),
            "attempts_made": int(call.get("attempts_made") or 0),
            "operator_number": format_phone(call.get("operator_number")) if call.get("operator_number") else "",
            "finished_at": self._time(parse_time(call.get("finished_at")), tz, locale),
            "tags": tags,
        }

    def _attempt_view(self, attempt: Mapping[str, Any], tz: ZoneInfo, locale: str) -> dict[str, Any]:
        tr = translations(locale)
        direction = attempt.get("direction")
        return {
            "number": int(attempt.get("number") or 0),
            "started_at": self._time(parse_time(attempt.get("started_at")), tz, locale),
            "direction": tr.gettext(DIRECTION_LABELS[direction])
            if direction in DIRECTION_LABELS
            else one_line(direction, 40),
            "operator_status": _leg(attempt.get("operator_status")),
            "client_status": _leg(attempt.get("client_status")),
            "talk_seconds": int(attempt.get("duration_seconds") or 0),
            "talk_time": self._duration(attempt.get("duration_seconds") or 0, locale),
            "status": first_upper(gettext(one_line(attempt.get("display_status"), 40), locale)),
            "reason": gettext(one_line(attempt.get("reason")), locale),
            "operator_number": format_phone(attempt.get("operator_number")) if attempt.get("operator_number") else "",
        }

    def _call_url(self, call_id: Any) -> str:
        # the admin's page of a call; this URL is the contract the admin UI implements
        return f"{self.public_url}/calls/{file_safe(call_id)}" if call_id else ""

    @staticmethod
    def _time(moment: dt.datetime | None, tz: ZoneInfo, locale: str) -> str:
        if moment is None:
            return ""
        return babel_datetime(moment.astimezone(tz), "d MMM y, HH:mm:ss", locale=locale)

    @staticmethod
    def _duration(seconds: Any, locale: str) -> str:
        tr = translations(locale)
        total = max(int(seconds), 0)
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        parts = []
        if hours:
            parts.append(tr.gettext("%(hours)d h") % {"hours": hours})
        if hours or minutes:
            parts.append(tr.gettext("%(minutes)d min") % {"minutes": minutes})
        parts.append(tr.gettext("%(seconds)d s") % {"seconds": secs})
        return " ".join(parts)


def first_upper(text: str) -> str:
    """The core's statuses and reasons are lower-case ids; shown on their own they start a sentence."""
    return text[:1].upper() + text[1:]


def _leg(status: Any) -> str:
    return str(status) if isinstance(status, int) else "—"  # a leg that was never dialled


def _zone_label(tz: ZoneInfo, moment: dt.datetime | None) -> str:
    """``Europe/Moscow, UTC+03:00``: the offset in force at the moment the message is about."""
    offset = (moment or dt.datetime.now(dt.UTC)).astimezone(tz).strftime("%z")
    return f"{tz.key}, UTC{offset[:3]}:{offset[3:]}"


def file_safe(value: Any, limit: int = 64) -> str:
    """An id as it may appear in a file name or a Message-ID."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(value))[:limit] or "_"
