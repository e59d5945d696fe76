"""The admin's "send a test e-mail" check: a real message to the connection's technical address.

The admin sends a form-like e-mail through the plugin's own SMTP intake (``aiosmtplib``, a real
SMTP session), then waits until the intake has stored it and says what became of it. The
message carries an ``X-Perezvon-Check`` header signed with the deployment's secret key, so the
intake reads it like any form (parser, matching) but never submits it to the callback intake:
a test must not ring anybody. A forged header without the key is an ordinary form e-mail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from perezvon.api import Connection, PanelMessage, PluginKind, plugin_is_on
from perezvon.plugins.siteforms.addresses import email_of, technical_address
from perezvon.plugins.siteforms.app import KEY
from perezvon.plugins.siteforms.directory import Directory
from perezvon.plugins.siteforms.matching import match_lead
from perezvon.plugins.siteforms.models import InboundMessage, MessageStatus, RawMessage
from perezvon.plugins.siteforms.parser import parse_message
from perezvon.plugins.siteforms.texts import text

CHECK_HEADER = "X-Perezvon-Check"
#: a number nobody has: the test is never called, and the phone only shows that parsing works
TEST_PHONE = "+7 999 000-00-00"
#: how long the SMTP session may take
SEND_TIMEOUT = 15.0
#: how long to wait for the stored message after the intake's 250 (it commits before answering,
#: so this matters only when another process's database answers late)
ARRIVAL_SECONDS = 10.0


def check_token(secret: str, local_part: str, nonce: str) -> str:
    """``<nonce>.<signature>``: only a holder of the secret key makes one for this address."""
    signature = hmac.new(secret.encode(), f"siteforms-check:{local_part}:{nonce}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]
    return f"{nonce}.{signature}"


def is_check(token: str, secret: str, local_part: str) -> bool:
    if not token or not secret or "." not in token:
        return False
    nonce = token.split(".", 1)[0]
    return hmac.compare_digest(check_token(secret, local_part, nonce), token)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the check is sent: the SMTP intake's host and port, as this process reaches it."""

    host: str
    port: int

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


def check_message(to: str, domain: str, token: str, locale: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"check@{domain}"
    message["To"] = to
    message["Subject"] = text("Perezvon: a test e-mail to the technical address", locale)
    message["Message-ID"] = make_msgid("check", domain=domain)
    message[CHECK_HEADER] = token
    body = [
        text("A test e-mail from the Perezvon admin: a site's form sends its requests like this.", locale),
        "",
        f"{text('Name', locale)}: {text('Test', locale)}",
        f"{text('Phone', locale)}: {TEST_PHONE}",
    ]
    message.set_content("\n".join(body))
    return message


async def send_check(
    connection: Connection, *, domain: str, secret: str, target: Target, locale: str
) -> list[PanelMessage]:
    """Send the test e-mail, wait for it to be stored, and say what became of it."""
    if not connection.is_on or not await plugin_is_on(connection, PluginKind.APPLICATION, KEY):
        return [
            (
                "error",
                text(
                    "Site forms are switched off for this connection, so the intake refuses mail to its "
                    "address. Switch them on first.",
                    locale,
                ),
            )
        ]
    if not secret:
        return [("error", text("The server has no secret key to sign a test e-mail with.", locale))]
    address = await technical_address(connection.id)
    to = email_of(address, domain)
    message = check_message(to, domain, check_token(secret, address.local_part, secrets.token_hex(8)), locale)
    try:
        await aiosmtplib.send(
            message,
            sender=f"check@{domain}",
            recipients=[to],
            hostname=target.host,
            port=target.port,
            timeout=SEND_TIMEOUT,
            start_tls=False,  # our own intake; the test carries no personal data
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        reply = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return [("error", text("The intake refused the technical address: %(reply)s", locale, reply=reply))]
    except aiosmtplib.SMTPResponseException as exc:
        reply = f"{exc.code} {exc.message}"
        return [("error", text("The intake did not take the test e-mail: %(reply)s", locale, reply=reply))]
    except (aiosmtplib.SMTPException, OSError) as exc:
        return [
            (
                "error",
                text(
                    "The SMTP intake at %(where)s does not answer (%(reason)s). Is perezvon serve or "
                    "perezvon smtp running?",
                    locale,
                    where=target.describe(),
                    reason=str(exc) or type(exc).__name__,
                ),
            )
        ]
    row = await _arrived(connection.id, message["Message-ID"])
    if row is None:
        return [
            (
                "error",
                text(
                    "The intake accepted the test e-mail, but it was not stored within %(seconds)s s.",
                    locale,
                    seconds=f"{ARRIVAL_SECONDS:g}",
                ),
            )
        ]
    return await _verdict(connection, row, locale)


async def _arrived(connection_id: int, message_id: str) -> InboundMessage | None:
    deadline = asyncio.get_running_loop().time() + ARRIVAL_SECONDS
    while True:
        row = await InboundMessage.filter(connection_id=connection_id, message_id=message_id).first()
        if row is not None or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.2)


async def _verdict(connection: Connection, row: InboundMessage, locale: str) -> list[PanelMessage]:
    if row.status == MessageStatus.TEST and not row.error:
        raw = await RawMessage.get_or_none(message_id=row.id)
        draft = match_lead(parse_message(raw.content), await Directory(0).site(connection.id)) if raw else None
        return [
            (
                "ok",
                text(
                    "The test e-mail arrived and was read as a lead: phone %(phone)s, name %(name)s. "
                    "Site forms work; no call is made for a test.",
                    locale,
                    phone=draft.phone if draft and draft.phone else TEST_PHONE,
                    name=f"«{draft.name}»" if draft and draft.name else "—",
                ),
            )
        ]
    if row.status == MessageStatus.LEAD:  # the intake's process signs with another key: a real lead was made
        return [
            (
                "error",
                text(
                    "The test e-mail arrived and became a real lead: the SMTP intake does not share this "
                    "server's secret key (PEREZVON_SECRET_KEY), so it could not tell a test.",
                    locale,
                ),
            )
        ]
    return [
        (
            "error",
            text(
                "The test e-mail arrived, but no lead would come of it: %(reason)s",
                locale,
                reason=(row.error and text(row.error, locale)) or row.status_label(locale),
            ),
        )
    ]
