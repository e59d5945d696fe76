"""The mail notifier: sends through an SMTP relay, or writes .eml files to the outbox.

It runs inside the core's ``core.notify`` job, which retries with back-off
whenever :meth:`MailNotifier.send` raises. So a relay that is down, slow or
answers 4xx simply makes ``send`` raise, and the job tries again later.
A permanent 5xx rejection raises too (the core decides about retries), but it
is logged as an error that names the relay's answer: retrying will not help
until the relay or the settings change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosmtplib

from perezvon.api import DeliveryError, Lead, Notification, Notifier
from perezvon.plugins.mail.compose import ONCE_PER_SUBJECT, Composer, NotificationDataError, file_safe

if TYPE_CHECKING:
    from perezvon.api import Settings

log = logging.getLogger("perezvon.mail")

#: the core's defaults, for a plugin host built without core settings (e.g. in a unit test)
FALLBACK_DATA_DIR = Path("var")
FALLBACK_PUBLIC_URL = "http://127.0.0.1:8000"


def outbox_path(settings: Mapping[str, Any], core_settings: Settings | None) -> Path:
    """``outbox_dir`` from the settings; empty means ``<data dir>/outbox``, relative is under the data dir."""
    data_dir = Path(core_settings.data_dir) if core_settings else FALLBACK_DATA_DIR.resolve()
    configured = Path(settings.get("outbox_dir") or "outbox").expanduser()
    return configured if configured.is_absolute() else data_dir / configured


@dataclasses.dataclass(frozen=True)
class Relay:
    host: str
    port: int
    security: str  # "starttls" | "tls" | "none"
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    timeout: float = 30.0

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


def valid_recipients(addresses: tuple[str, ...] | list[str]) -> list[str]:
    """The recipients that are single, well-formed addresses; anything else is skipped and logged."""
    valid: list[str] = []
    for raw in addresses:
        try:
            address = Address(addr_spec=str(raw).strip())
        except (ValueError, IndexError):  # includes CR/LF, several addresses, display names
            log.warning("recipient %r skipped: not a single e-mail address", raw)
            continue
        if not address.username or not address.domain:
            log.warning("recipient %r skipped: not a single e-mail address", raw)
            continue
        if address.addr_spec not in valid:
            valid.append(address.addr_spec)
    return valid


class MailNotifier(Notifier):
    key = "mail"

    def __init__(self, composer: Composer, *, relay: Relay | None, outbox_dir: Path) -> None:
        self.composer = composer
        self.relay = relay
        self.outbox_dir = outbox_dir

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], core_settings: Settings | None, lead_sources: Mapping[str, Any] | None = None
    ) -> MailNotifier:
        composer = Composer(
            language=settings["language"],
            from_address=settings["from_address"],
            reply_to=settings["reply_to"],
            public_url=core_settings.public_url if core_settings else FALLBACK_PUBLIC_URL,
            lead_sources=lead_sources,
        )
        relay = None
        if settings["relay_host"]:
            relay = Relay(
                host=settings["relay_host"],
                port=settings["relay_port"],
                security=settings["security"],
                username=settings["username"],
                password=settings["password"],
                timeout=settings["timeout"],
            )
        return cls(composer, relay=relay, outbox_dir=outbox_path(settings, core_settings))

    def describe(self) -> str:
        return f"relay {self.relay.describe()}" if self.relay else f"outbox {self.outbox_dir}"

    async def send(self, notification: Notification) -> None:
        recipients = valid_recipients(notification.recipients)
        if not recipients:
            raise NotificationDataError(f"no valid recipient for {notification.kind} {notification.subject_id}")
        notification = await self._with_office_and_department(notification)
        # a file in the outbox is read by people (8bit UTF-8); a relay gets 7-bit base64 parts
        message = self.composer.message(notification, recipients, readable=self.relay is None)
        if self.relay is None:
            path = await asyncio.to_thread(self._write_outbox, message, notification)
            log.info(
                "%s %s for %s written to %s", notification.kind, notification.subject_id, ", ".join(recipients), path
            )
            return
        await self._send_through_relay(message, recipients, notification)
        log.info(
            "%s %s sent to %s through %s",
            notification.kind,
            notification.subject_id,
            ", ".join(recipients),
            self.relay.describe(),
        )

    # --- the relay ----------------------------------------------------------------------------

    async def _send_through_relay(self, message: Message, recipients: list[str], notification: Notification) -> None:
        relay = self.relay
        assert relay is not None, "send() comes here only with a relay"
        what = f"{notification.kind} {notification.subject_id}"
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=self.composer.envelope_sender,
                recipients=recipients,
                hostname=relay.host,
                port=relay.port,
                timeout=relay.timeout,
                use_tls=relay.security == "tls",
                # False, not None: with "none" aiosmtplib would otherwise upgrade when offered,
                # and with "starttls" a relay that does not offer it must fail, never fall back to plain text
                start_tls=relay.security == "starttls",
                username=relay.username or None,
                password=relay.password or None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            codes = [refusal.code for refusal in exc.recipients]
            answer = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise self._failure(
                what,
                answer,
                code=codes[0] if codes else None,
                permanent=bool(codes) and all(code >= 500 for code in codes),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:  # sender, data or login refused
            raise self._failure(what, f"{exc.code} {exc.message}", code=exc.code, permanent=exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # unreachable, timed out, TLS, disconnected
            raise self._failure(what, f"{type(exc).__name__}: {exc}", code=None, permanent=False) from exc
        if refused:  # the others got it; sending again would give them a second copy
            log.warning(
                "%s: the relay %s refused %s",
                what,
                relay.describe(),
                "; ".join(f"{address}: {answer.code} {answer.message}" for address, answer in refused.items()),
            )

    def _failure(self, what: str, answer: str, *, code: int | None, permanent: bool) -> DeliveryError:
        assert self.relay is not None, "only a relay fails this way"
        relay = self.relay.describe()
        if permanent:
            log.error(
                "%s: the relay %s rejected it permanently (%s); retries will fail the same way "
                "until the relay or [plugins.mail] settings change",
                what,
                relay,
                answer,
            )
        else:
            log.warning("%s: the relay %s failed temporarily (%s); the job will retry", what, relay, answer)
        return DeliveryError(f"mail relay {relay}: {answer}", retry=not permanent, status=code, response=answer[:500])

    # --- the outbox ---------------------------------------------------------------------------

    def _write_outbox(self, message: Message, notification: Notification) -> Path:
        """Write one RFC 5322 file, atomically: a reader never sees half a message."""
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        kind, subject = notification.kind, file_safe(notification.subject_id)
        # the same subject also goes, masked, to users who may not see clients' contacts: a file of its own
        if notification.data.get("contacts_masked"):
            subject += "-masked"
        # the same job run again (a retry, a restart) must not write a second copy: a hidden marker
        # names the file written, one look-up however large the outbox grows (a glob grew with it)
        marker = self.outbox_dir / f".once-{kind}-{subject}"
        if kind in ONCE_PER_SUBJECT:
            try:
                return self.outbox_dir / marker.read_text(encoding="ascii")
            except FileNotFoundError:
                pass
        stamp = notification.created_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.outbox_dir / f"{stamp}-{kind}-{subject}.eml"
        # mkstemp makes the file 0600: activation links and clients' phones are for the admin only
        fd, temporary = tempfile.mkstemp(dir=self.outbox_dir, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(message.as_bytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, final)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        if kind in ONCE_PER_SUBJECT:
            marker.write_text(final.name, encoding="ascii")
        return final

    # --- data the core does not send yet --------------------------------------------------------

    @staticmethod
    async def _with_office_and_department(notification: Notification) -> Notification:
        """Add the lead's office and department, which the core's call data does not carry yet.

        ``data["office"]`` and ``data["department"]`` (``{"id", "name"}`` or None), when
        the sender gives them, are used as they are; otherwise they are read by the lead's id.
        """
        data = notification.data
        lead_id = (data.get("lead") or {}).get("id")
        if lead_id is None or ("office" in data and "department" in data):
            return notification
        rows = await Lead.filter(id=lead_id).values("office__id", "office__name", "department__id", "department__name")
        if not rows:
            return notification
        row = rows[0]
        found = {
            key: {"id": row[f"{key}__id"], "name": row[f"{key}__name"]} if row[f"{key}__id"] is not None else None
            for key in ("office", "department")
            if key not in data
        }
        return dataclasses.replace(notification, data={**data, **found})
