"""The SMTP intake: aiosmtpd sessions with the rules of a technical-address mail server.

* RCPT: only ``<local part>@<intake domain>`` of a known technical address
  whose connection takes site forms (550 otherwise: no relaying, and the
  sender sees a bounce instead of a silent loss); at most ``max_recipients``
  RCPT commands per message (452: the sender sends the rest later).
* Size: ``max_message_bytes``, advertised as SIZE and enforced while the
  data arrives (552), so a 100 MB message never sits in memory.
* DATA: a MIME "bomb" is refused (554) before it is parsed; everything else
  is stored and answered 250 only once its row, raw bytes and lead are
  committed (:mod:`perezvon.plugins.siteforms.delivery`), 451 when they cannot be now.
* STARTTLS when ``tls_cert``/``tls_key`` are set. No AUTH: the server takes
  mail for its own addresses only, like an MX, so it needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from perezvon.api import PluginError, Server, ServerContext
from perezvon.plugins.siteforms.check import Target
from perezvon.plugins.siteforms.delivery import Envelope, MessageIntake, Outcome
from perezvon.plugins.siteforms.directory import Directory, KnownAddress
from perezvon.plugins.siteforms.models import MessageStatus
from perezvon.plugins.siteforms.parser import MessageTooComplex, ParsedForm, check_structure, parse_message
from perezvon.plugins.siteforms.schemas import DEFAULT_SMTP_PORT
from perezvon.plugins.siteforms.store import MessageStore, purge_expired_raw

if TYPE_CHECKING:
    from perezvon.api import Settings

log = logging.getLogger("perezvon.siteforms")

DEFAULT_PORT = DEFAULT_SMTP_PORT
#: messages larger than this are parsed in a thread, so other sessions are not held up meanwhile
PARSE_INLINE_BYTES = 256 * 1024
#: how often raw messages past their retention are deleted
RETENTION_EVERY_SECONDS = 3600.0
#: on stop, messages being processed get this long to finish before sessions are cut
STOP_GRACE_SECONDS = 10.0

#: the servers started in this process: the admin's test e-mail goes to one of them when there is
#: one (``perezvon serve``), else to the ``check_host``/``check_port`` settings
_RUNNING: list[SiteFormsSmtpServer] = []

_REPLIES = {
    MessageStatus.LEAD: "lead created",
    MessageStatus.NO_PHONE: "no phone number found, message kept",
    MessageStatus.DUPLICATE: "duplicate message, no new lead",
    MessageStatus.REFUSED_BY_INTAKE: "message kept, the lead was refused",
    MessageStatus.TEST: "test message read, no call is made",
}


def local_target(domain: str) -> Target | None:
    """The SMTP intake of this process for ``domain`` (as a client reaches it), or None."""
    for server in _RUNNING:
        if server.settings["domain"] == domain and server._server is not None:
            host = server.context.host
            # a server listening on every interface is reached on the loopback one
            return Target("127.0.0.1" if host in ("", "0.0.0.0", "::") else host, server.port)
    return None


class _FormEnvelope(SmtpEnvelope):
    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[KnownAddress] = []
        self.rcpt_commands = 0


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP session, counted by the server so that stop() can end them all."""

    #: RFC 5321 allows 1000 octets a line; PHP scripts send whole HTML bodies on one line,
    #: and refusing their forms would lose leads, so lines are allowed this long
    line_length_limit = 64 * 1024

    def __init__(self, handler: FormMailHandler, sessions: set[IntakeSMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions

    def _create_envelope(self) -> _FormEnvelope:
        return _FormEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    def disconnect(self) -> None:
        if self.transport is not None:
            self.transport.close()


class FormMailHandler:
    """The aiosmtpd handler: the RCPT and DATA rules of the module docstring."""

    def __init__(self, *, domain: str, max_recipients: int, directory: Directory, intake: MessageIntake) -> None:
        self.domain = domain.lower()
        self.max_recipients = max_recipients
        self.directory = directory
        self.intake = intake
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: _FormEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        envelope.rcpt_commands += 1
        if envelope.rcpt_commands > self.max_recipients:
            return "452 4.5.3 Too many recipients, send the rest in another message"
        local, _, domain = address.rpartition("@")
        if not local or domain.lower().rstrip(".") != self.domain:
            return f"550 5.7.1 Relaying denied: this server takes mail for @{self.domain} only"
        local = local.lower().split("+", 1)[0]  # "<address>+anything" is the same address
        try:
            known = await self.directory.address(local)
        except Exception as exc:
            log.warning("technical address look-up failed: %s", exc)
            return "451 4.3.0 Temporary failure, try again later"
        if known is None:
            return "550 5.1.1 No such technical address"
        if not known.accepting:
            return "550 5.2.1 Site forms are switched off for this address"
        if all(a.id != known.id for a in envelope.addresses):  # the same address twice is one delivery
            envelope.addresses.append(known)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: _FormEnvelope) -> str:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self._take(session, envelope)
        except Exception:  # a bug must not answer 250, nor leak its text to the sender
            log.exception("unexpected error while taking a message")
            return "451 4.3.0 Temporary server error, try again later"
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    async def _take(self, session: Session, envelope: _FormEnvelope) -> str:
        raw: bytes = envelope.original_content or b""
        received = Envelope(
            raw=raw,
            mail_from=envelope.mail_from or "",
            peer=str((session.peer or ("",))[0]),
            received_at=dt.datetime.now(dt.UTC),
        )
        try:
            form = await asyncio.to_thread(_read, raw) if len(raw) > PARSE_INLINE_BYTES else _read(raw)
        except MessageTooComplex as exc:
            return f"554 5.6.0 Message refused: {exc}"
        except Exception as exc:  # kept unread rather than lost: support can still open it
            log.exception("could not parse a message of %d bytes", len(raw))
            form, error = None, f"{type(exc).__name__}: {exc}"
        else:
            error = ""
        outcomes: list[Outcome] = []
        for address in envelope.addresses:
            outcomes.append(await self.intake.deliver(address, form, received, parse_error=error))
        retry = [o.retry_reason for o in outcomes if o.status is None]
        if retry:
            # Some copies may be stored already: the sender's retry finds them by Message-ID.
            log.warning("message from %s not taken now: %s", received.mail_from, "; ".join(retry))
            return "451 4.3.0 The message could not be stored now, try again later"
        return "250 2.0.0 OK: " + "; ".join(dict.fromkeys(_REPLIES[o.status] for o in outcomes if o.status is not None))


def _read(raw: bytes) -> ParsedForm:
    check_structure(raw)
    return parse_message(raw)


class SiteFormsSmtpServer(Server):
    """``perezvon smtp`` and the SMTP part of ``perezvon serve``."""

    name = "smtp"

    def __init__(self, context: ServerContext, settings: dict[str, Any], core_settings: Settings | None) -> None:
        self.context = context
        self.settings = settings
        self.port = context.ports.get("smtp", DEFAULT_PORT)
        self.cache_seconds = core_settings.connection_cache_seconds if core_settings else 5.0
        self.secret = core_settings.secret_key if core_settings else ""
        self.sessions: set[IntakeSMTP] = set()
        self.handler: FormMailHandler | None = None
        self.store: MessageStore | None = None
        self._server: asyncio.AbstractServer | None = None
        self._retention: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.tls = False

    def _tls_context(self) -> ssl.SSLContext | None:
        cert, key = self.settings.get("tls_cert"), self.settings.get("tls_key")
        if not cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise PluginError(f"plugin 'siteforms': cannot use tls_cert {cert!r} with tls_key {key!r}: {exc}") from None
        return context

    async def start(self) -> None:
        # aiosmtpd logs every command at INFO: at hundreds of messages a second that is noise
        # and CPU; its warnings and errors still show
        mail_log = logging.getLogger("mail.log")
        if mail_log.level == logging.NOTSET:
            mail_log.setLevel(logging.WARNING)
        tls_context = self._tls_context()
        self.tls = tls_context is not None
        self.store = MessageStore()
        directory = Directory(self.cache_seconds)
        self.handler = handler = FormMailHandler(
            domain=self.settings["domain"],
            max_recipients=self.settings["max_recipients"],
            directory=directory,
            intake=MessageIntake(intake=self.context.intake, directory=directory, store=self.store, secret=self.secret),
        )
        loop = asyncio.get_running_loop()
        hostname = self.settings.get("hostname") or self.settings["domain"]

        def session() -> IntakeSMTP:
            return IntakeSMTP(
                handler,
                self.sessions,
                data_size_limit=self.settings["max_message_bytes"],
                enable_SMTPUTF8=True,
                hostname=hostname,
                ident="Perezvon site forms",
                tls_context=tls_context,
                timeout=self.settings["session_timeout_seconds"],
                loop=loop,
            )

        try:
            self._server = await loop.create_server(session, self.context.host, self.port)
        except OSError as exc:  # e.g. the port is taken: one clear line, not a traceback
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise PluginError(
                f"plugin 'siteforms': cannot listen on {self.context.host}:{self.port}: {reason}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]  # the real one when asked for port 0
        self._retention = asyncio.create_task(self._purge_raw_until_stopped(), name="siteforms-raw-retention")
        _RUNNING.append(self)

    async def _purge_raw_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                deleted = await purge_expired_raw(self.settings["raw_retention_days"])
                if deleted:
                    log.info("deleted %d raw messages older than %d days", deleted, self.settings["raw_retention_days"])
            except Exception as exc:  # the database is away: try again next time
                log.warning("raw message retention skipped: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RETENTION_EVERY_SECONDS)

    async def stop(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        self._stopping.set()
        if self._retention is not None:
            # not cancelled: a query cut off while Tortoise opens its SQLite connection keeps
            # the connection's lock forever, so the purge under way is let finish
            try:
                await asyncio.wait_for(asyncio.shield(self._retention), STOP_GRACE_SECONDS)
            except TimeoutError:
                self._retention.cancel()
        if self._server is not None:
            self._server.close()  # no new sessions
            if self.handler is not None:
                with contextlib.suppress(TimeoutError):  # messages being stored get a moment to finish
                    await asyncio.wait_for(self.handler.idle.wait(), STOP_GRACE_SECONDS)
            for session in list(self.sessions):
                session.disconnect()
            await self._server.wait_closed()
            self._server = None
        if self.store is not None:
            await self.store.close()

    def describe(self) -> str:
        return (
            f"smtp on {self.context.host}:{self.port} (site forms to @{self.settings['domain']}"
            + (", STARTTLS" if self.tls else "")
            + ")"
        )
