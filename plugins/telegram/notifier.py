"""The Telegram notifier: linking a user's chat from the admin profile, and sending them messages.

Linking: the profile's "Link Telegram" button makes a one-time code (random, valid
``code_minutes``, single-use) and shows the deep link ``https://t.me/<bot>?start=<code>``; opening
it makes Telegram send ``/start <code>`` from the user's chat, which the poller
(:mod:`perezvon.plugins.telegram.poller`) hands to :meth:`TelegramNotifier.handle_update`.
Nobody ever types a chat id.

Sending: a notification names e-mail addresses (the core's recipients); the users with those
addresses and a linked chat get the message, each in the language they used the admin in when
they linked. A message delivered to a chat is recorded, so the core's retry of a job that failed
for another chat never sends it twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError

from perezvon.api import (
    DEFAULT_LOCALE,
    LOCALES,
    AdminPanel,
    CheckFailed,
    DeliveryError,
    Notification,
    Notifier,
    PanelMessage,
    active_users_by_email,
)
from perezvon.plugins.telegram.bot import BotApi, BotError, Pacer
from perezvon.plugins.telegram.models import TelegramLink, TelegramSent
from perezvon.plugins.telegram.texts import KINDS, render, t

if TYPE_CHECKING:
    from perezvon.api import Settings

log = logging.getLogger("perezvon.telegram")

LINK = "link"
UNLINK = "unlink"
#: how many times one message waits out a 429 before it is handed back to the core's retries
MAX_429_WAITS = 3
#: how long getMe's answer (the bot's username) is kept
ME_SECONDS = 600.0


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TelegramNotifier(Notifier):
    key = "telegram"
    profile_panel = AdminPanel(template="profile.html", actions=(LINK, UNLINK))

    def __init__(self, settings: Mapping[str, Any], core_settings: Settings | None) -> None:
        self.api = BotApi(settings["token"], settings["api_url"], timeout=15.0)
        self.pacer = Pacer(settings["messages_per_second"], settings["chat_interval"])
        self.code_minutes: int = settings["code_minutes"]
        self.poll_timeout: int = settings["poll_timeout"]
        self.max_retry_after: int = settings["max_retry_after"]
        self.admin_url = (core_settings.public_url if core_settings else "http://127.0.0.1:8000").rstrip("/")
        self._me: dict[str, Any] | None = None
        self._me_at = 0.0

    def __repr__(self) -> str:
        return f"TelegramNotifier({self.api!r})"

    # --- the bot ------------------------------------------------------------------------------

    async def me(self, *, fresh: bool = False) -> dict[str, Any]:
        """getMe: the bot's id and username (kept a few minutes); :class:`BotError` when refused."""
        loop = asyncio.get_running_loop()
        if fresh or self._me is None or loop.time() - self._me_at > ME_SECONDS:
            result = await self.api.call("getMe")
            if not isinstance(result, dict) or not result.get("username"):
                raise BotError(502, "getMe answered without a username")
            self._me, self._me_at = result, loop.time()
        return self._me

    async def check(self, settings: Mapping[str, Any] | None = None) -> str:
        """ "Check connection": getMe with the token; the bot's @username, else :class:`CheckFailed`."""
        try:
            me = await self.me(fresh=True)
        except BotError as exc:
            message = (
                "Telegram refused the bot token."
                if exc.code in (401, 404)
                else "Telegram could not be reached; try again later."
            )
            raise CheckFailed({"token" if exc.code in (401, 404) else CheckFailed.NOT_A_FIELD: [message]}) from None
        return f"@{me['username']}"

    # --- the profile panel ----------------------------------------------------------------------

    async def profile_panel_data(self, user_id: int, locale: str) -> dict[str, Any]:
        data: dict[str, Any] = {"configured": self.api.configured, "linked": False, "blocked": False, "deep_link": ""}
        if not self.api.configured:
            return data
        link = await TelegramLink.get_or_none(user_id=user_id)
        if link is not None and link.chat_id is not None:
            data.update(linked=True, blocked=link.blocked_at is not None, chat_name=link.chat_name)
            return data
        if link is not None and link.code and link.code_expires_at and link.code_expires_at > now():
            try:
                me = await self.me()
            except BotError as exc:
                log.warning("telegram: getMe failed: %s", exc)
                data["unreachable"] = True
                return data
            data["deep_link"] = f"https://t.me/{me['username']}?start={link.code}"
            data["bot"] = f"@{me['username']}"
            data["minutes"] = self.code_minutes
        return data

    async def profile_panel_action(
        self, user_id: int, action: str, form: dict[str, Any], locale: str
    ) -> list[PanelMessage]:
        if not self.api.configured:
            return [("error", t("Telegram is not set up on this server.", locale))]
        if action == LINK:
            code = secrets.token_urlsafe(24)  # 32 characters of [A-Za-z0-9_-], as a deep link allows
            expires = now() + dt.timedelta(minutes=self.code_minutes)
            language = locale if locale in LOCALES else DEFAULT_LOCALE
            _, made = await TelegramLink.get_or_create(
                user_id=user_id, defaults={"code": code, "code_expires_at": expires, "language": language}
            )
            if not made:
                await TelegramLink.filter(user_id=user_id).update(code=code, code_expires_at=expires, language=language)
            return [("ok", t("Open the link below in Telegram and press Start.", locale))]
        if action == UNLINK:
            old = await TelegramLink.get_or_none(user_id=user_id)
            await TelegramLink.filter(user_id=user_id).delete()
            if old is not None and old.chat_id is not None and old.blocked_at is None:
                await self._reply(old.chat_id, t("This chat is unlinked from Perezvon.", old.language))
            return [("ok", t("Telegram is unlinked.", locale))]
        return []

    # --- updates from the bot ---------------------------------------------------------------------

    async def handle_update(self, update: Mapping[str, Any]) -> None:
        """One update from getUpdates: ``/start <code>`` links the chat; ``/stop`` unlinks it."""
        message = update.get("message")
        if not isinstance(message, Mapping):
            return
        chat: Mapping[str, Any] = message["chat"] if isinstance(message.get("chat"), Mapping) else {}
        sender: Mapping[str, Any] = message["from"] if isinstance(message.get("from"), Mapping) else {}
        chat_id, text = chat.get("id"), message.get("text")
        if not isinstance(chat_id, int) or not isinstance(text, str):
            return
        language = "ru" if not str(sender.get("language_code") or "ru").startswith("en") else "en"
        command, _, argument = text.strip().partition(" ")
        command = command.split("@", 1)[0]
        if command == "/stop":
            links = await TelegramLink.filter(chat_id=chat_id).all()
            await TelegramLink.filter(chat_id=chat_id).delete()
            language = links[0].language if links else language
            await self._reply(chat_id, t("This chat is unlinked from Perezvon.", language))
            return
        if command != "/start" or not argument.strip():
            await self._reply(
                chat_id, t("To link this chat, open the link from your profile in Perezvon's admin.", language)
            )
            return
        if chat.get("type") not in (None, "private"):
            await self._reply(chat_id, t("Link a private chat with the bot, not a group.", language))
            return
        code = argument.strip()
        link = await TelegramLink.get_or_none(code=code) if code else None
        if link is None or link.code_expires_at is None or link.code_expires_at <= now():
            if link is not None:  # expired: the code is spent too
                await TelegramLink.filter(user_id=link.user_id, code=code).update(code=None, code_expires_at=None)
            await self._reply(
                chat_id,
                t("This link is expired or was used already. Open a new one from your profile in the admin.", language),
            )
            return
        name = " ".join(str(sender.get(k) or "") for k in ("first_name", "last_name")).strip()
        if sender.get("username"):
            name = f"{name} (@{sender['username']})".strip()
        # single-use: the update clears the code only if it is still this one (two /start at once link once)
        updated = await TelegramLink.filter(user_id=link.user_id, code=code).update(
            code=None, code_expires_at=None, chat_id=chat_id, chat_name=name[:200], linked_at=now(), blocked_at=None
        )
        if not updated:
            return
        log.info("telegram: user %s linked a chat", link.user_id)
        await self._reply(chat_id, t("Done: Perezvon's notifications will come to this chat.", link.language))

    async def _reply(self, chat_id: int, text: str) -> None:
        """An answer in the chat; a failure is logged (the user may try again), never raised."""
        await self.pacer.wait(chat_id)
        try:
            await self.api.call("sendMessage", {"chat_id": chat_id, "text": text})
        except BotError as exc:
            log.warning("telegram: an answer to a chat failed: %s", exc)
        self.pacer.sent(chat_id)

    # --- notifications ----------------------------------------------------------------------------

    def wants_new_leads(self) -> bool:
        return self.api.configured

    async def send(self, notification: Notification) -> None:
        if notification.kind not in KINDS or not self.api.configured:
            return
        links = await self._links_of(notification.recipients)
        masked = "masked" if notification.data.get("contacts_masked") else "full"
        retry: list[BotError] = []
        for link in links:
            assert link.chat_id is not None
            key = f"{notification.kind}:{notification.subject_id}:{link.chat_id}:{masked}"[:255]
            if await TelegramSent.exists(key=key):
                continue
            rendered = render(notification.kind, notification.data, link.language, self.admin_url)
            payload: dict[str, Any] = {
                "chat_id": link.chat_id,
                "text": rendered.text,
                "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": True},
            }
            markup = rendered.reply_markup()
            if markup:
                payload["reply_markup"] = markup
            try:
                result = await self._send_one(link.chat_id, payload)
            except BotError as exc:
                if exc.blocked:
                    await TelegramLink.filter(user_id=link.user_id).update(blocked_at=now())
                    log.warning("telegram: user %s blocked the bot (%s); nothing more is sent", link.user_id, exc)
                elif exc.retryable:
                    retry.append(exc)
                    log.warning("telegram: %s to user %s failed, will retry: %s", notification.kind, link.user_id, exc)
                else:
                    log.error("telegram: %s to user %s refused: %s", notification.kind, link.user_id, exc)
                continue
            message_id = result.get("message_id") if isinstance(result, dict) else None
            try:
                await TelegramSent.create(key=key, message_id=message_id)
            except IntegrityError:
                pass  # another job sent it at the same moment
        if retry:
            raise DeliveryError(f"Telegram: {retry[0]}", retry=True, status=retry[0].code)

    async def _send_one(self, chat_id: int, payload: dict[str, Any]) -> Any:
        for _ in range(MAX_429_WAITS + 1):
            await self.pacer.wait(chat_id)
            try:
                result = await self.api.call("sendMessage", payload)
            except BotError as exc:
                self.pacer.sent(chat_id)
                if exc.code != 429 or exc.retry_after is None or exc.retry_after > self.max_retry_after:
                    raise
                log.info("telegram: 429, waiting %s s as asked", exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                continue
            self.pacer.sent(chat_id)
            return result
        raise BotError(429, "still rate-limited")

    @staticmethod
    async def _links_of(addresses: tuple[str, ...]) -> list[TelegramLink]:
        user_ids = sorted(set((await active_users_by_email(addresses)).values()))
        if not user_ids:
            return []
        return await TelegramLink.filter(
            user_id__in=user_ids, chat_id__not_isnull=True, blocked_at__isnull=True
        ).order_by("user_id")
