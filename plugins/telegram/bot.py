"""The Bot API, as documented at https://core.telegram.org/bots/api: ``POST <api>/bot<token>/<method>``
with a JSON body; every answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": s}}``.

The token is a secret: it is never logged, never put in an error message (every text that may
hold the request's URL is redacted), and never shown in the admin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from perezvon.api import HttpPush

log = logging.getLogger("perezvon.telegram")

_TOKEN_IN_URL = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    return _TOKEN_IN_URL.sub("/bot<token>", text)


class _RedactTokens(logging.Filter):
    """httpx logs each request's URL, which holds the token: the token is blanked out."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = redact(message), ()
        return True


_filter = _RedactTokens()
for _name in ("httpx", "httpcore"):
    if _filter not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_filter)


class BotError(Exception):
    """The Bot API refused, or could not be reached (``code`` None)."""

    def __init__(self, code: int | None, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code or 'network'}: {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Network errors, 5xx and 429 are tried again; 4xx never."""
        return self.code is None or self.code >= 500 or self.code == 429

    @property
    def blocked(self) -> bool:
        """403: the user blocked the bot (or deleted the account): the chat is dead to us."""
        return self.code == 403


class BotApi:
    def __init__(self, token: str, api_url: str, *, timeout: float = 15.0) -> None:
        self._token = token
        self.api_url = api_url.rstrip("/")
        self.push = HttpPush(timeout=timeout, user_agent="Perezvon-telegram/1")

    def __repr__(self) -> str:  # no token in a traceback's locals
        return f"BotApi({self.api_url!r})"

    @property
    def configured(self) -> bool:
        return bool(self._token)

    async def call(self, method: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """The method's ``result``; :class:`BotError` on any refusal or failure."""
        if not self._token:
            raise BotError(401, "no bot token in [plugins.telegram]")
        url = f"{self.api_url}/bot{self._token}/{method}"
        try:
            response = await self.push.request("POST", url, json=payload or {}, timeout=timeout or self.push.timeout)
        except Exception as exc:  # the guard's refusal, a timeout, a reset: all are "try again later"
            raise BotError(None, redact(f"{type(exc).__name__}: {exc}")[:300]) from None
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise BotError(response.status_code if response.status_code >= 400 else 502, "not a Bot API answer")
        if body.get("ok") is True:
            return body.get("result")
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else response.status_code
        parameters: dict[str, Any] = body["parameters"] if isinstance(body.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after")
        raise BotError(
            code,
            redact(str(body.get("description") or "")[:300]),
            retry_after if isinstance(retry_after, int) else None,
        )


class Pacer:
    """Telegram's limits, kept by one process: about 30 messages a second in all and one a second
    per chat. ``await wait(chat)`` returns when the next message to ``chat`` may go."""

    def __init__(self, per_second: float, chat_interval: float) -> None:
        self.interval = 1.0 / per_second
        self.chat_interval = chat_interval
        self._next = 0.0
        self._chat_next: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: int) -> None:
        async with self._lock:
            now = time.monotonic()
            at = max(now, self._next, self._chat_next.get(chat_id, 0.0))
            self._next = at + self.interval
            self._chat_next[chat_id] = at + self.chat_interval
            if len(self._chat_next) > 10_000:  # forget chats long past their pause
                self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        if at > now:
            await asyncio.sleep(at - now)

    def sent(self, chat_id: int) -> None:
        """A message to ``chat`` has just reached Telegram: the chat's pause counts from now
        (a slow request must not bring the next one closer than Telegram allows)."""
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), time.monotonic() + self.chat_interval)
