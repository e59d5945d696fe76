"""Receiving the bot's updates by long polling ``getUpdates`` (a server next to the web app).

Why polling and not a webhook: it needs no public HTTPS address (Telegram's webhooks only
reach ports 443, 80, 88 and 8443 over HTTPS with a valid certificate), so it works the same
on a laptop, behind NAT and on a server; the bot only ever receives ``/start <code>`` and
``/stop``, a handful of updates a day. One process polls (``perezvon serve``); Telegram answers
409 to a second poller, or while a webhook is set for the bot, and the poller says so in the log.

The offset of the next update is stored, so an update is handled once even across restarts
(Telegram forgets an update once a getUpdates asks for a later offset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from perezvon.api import Server
from perezvon.plugins.telegram.bot import BotError
from perezvon.plugins.telegram.models import TelegramState
from perezvon.plugins.telegram.notifier import TelegramNotifier

log = logging.getLogger("perezvon.telegram")

#: seconds to wait after a failed getUpdates, by kind of failure
NETWORK_PAUSE = 5.0
REFUSED_PAUSE = 60.0


class TelegramPoller(Server):
    name = "telegram"

    def __init__(self, notifier: TelegramNotifier) -> None:
        self.notifier = notifier
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"telegram bot updates from {self.notifier.api.api_url}"

    async def start(self) -> None:
        if not self.notifier.api.configured:
            log.info("telegram: no bot token, no updates polled")
            return
        self._task = asyncio.create_task(self._run(), name="telegram-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except BotError as exc:
                pause = NETWORK_PAUSE if exc.retryable else REFUSED_PAUSE
                if exc.code == 409:
                    log.warning("telegram: getUpdates refused (%s): a webhook is set or another process polls", exc)
                else:
                    log.warning("telegram: getUpdates failed (%s); trying again in %g s", exc, pause)
                await asyncio.sleep(pause)
            except Exception:
                log.exception("telegram: handling updates failed")
                await asyncio.sleep(NETWORK_PAUSE)

    async def poll_once(self, timeout: int | None = None) -> int:
        """One getUpdates (a long poll of ``poll_timeout`` s); handles what came; how many came."""
        wait = self.notifier.poll_timeout if timeout is None else timeout
        state, _ = await TelegramState.get_or_create(id=1)
        updates: Any = await self.notifier.api.call(
            "getUpdates",
            {"offset": state.next_update_id, "timeout": wait, "allowed_updates": ["message"]},
            timeout=wait + 10,
        )
        if not isinstance(updates, list):
            raise BotError(502, "getUpdates answered without a list")
        for update in updates:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                continue
            try:
                await self.notifier.handle_update(update)
            except Exception:  # one bad update must not stop the others, nor come back forever
                log.exception("telegram: update %s could not be handled", update.get("update_id"))
            await TelegramState.filter(id=1).update(next_update_id=update["update_id"] + 1)
        return len(updates)
