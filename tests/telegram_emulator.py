"""A local Bot API (https://core.telegram.org/bots/api) for the Telegram plugin's tests (no tests here).

It answers as the real one is documented to: ``POST /bot<token>/<method>`` with a JSON or form body;
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description": "..."}`` with the
same HTTP status. It refuses what Telegram refuses: an unknown token (401 Unauthorized), an unknown
method (404), a chat it does not know (400 chat not found), a chat that blocked the bot (403), an empty
or too long text, HTML that Telegram cannot parse (a tag it does not support, an unclosed tag, a bare
``<`` or ``&``, a named entity other than ``&lt; &gt; &amp; &quot;``), an inline button without an
http(s) URL. Tests queue failures per chat (``fail_next``): a 429 with ``parameters.retry_after`` or a
5xx. getUpdates keeps the documented offset semantics: an update is returned until a call asks for a
later offset, and it long-polls up to ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-z-]+=\"[^\"<>]*\")*)\s*>")
#: a bot's update ids only grow, whatever emulator instance a test starts
_update_ids = itertools.count(700_000)
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


class HtmlError(ValueError):
    pass


def parse_html(text: str) -> str:
    """The plain text of a Telegram HTML message, or :class:`HtmlError` as Telegram would refuse it."""
    stack: list[str] = []
    plain: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        plain.append(_entities(text[position : match.start()]))
        closing, name, attributes = match.group(1), match.group(2).lower(), match.group(3)
        if name not in TAGS:
            raise HtmlError(f'Unsupported start tag "{name}" at byte offset {match.start()}')
        if closing:
            if not stack or stack[-1] != name:
                raise HtmlError(f"Unexpected end tag at byte offset {match.start()}")
            stack.pop()
        else:
            if name == "a" and not re.search(r'href="[^"]+"', attributes):
                raise HtmlError("Can't find end of href attribute")
            stack.append(name)
        position = match.end()
    plain.append(_entities(text[position:]))
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(plain)


def _entities(chunk: str) -> str:
    if "<" in chunk or ">" in chunk:
        raise HtmlError("Unsupported start tag or a bare '<' / '>'")
    for index, char in enumerate(chunk):
        if char == "&" and not _ENTITY.match(chunk, index):
            raise HtmlError(f"Character '&' is reserved and must be escaped with the preceding '\\' at {index}")
    return html.unescape(chunk)


def _fail(status: int, description: str, **parameters: Any) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


class BotApiEmulator:
    def __init__(self, token: str, username: str = "perezvon_test_bot") -> None:
        self.token = token
        self.username = username
        self.bot_id = int(token.split(":")[0])
        #: chat id -> the user in it (Telegram knows a chat once its user pressed Start)
        self.chats: dict[int, dict[str, Any]] = {}
        self.blocked: set[int] = set()
        #: chat id -> failures to answer to the next sendMessage calls, in order: (status, retry_after)
        self.fail_next: dict[int, list[tuple[int, int | None]]] = {}
        #: every sendMessage tried: (monotonic time, chat id, payload, the HTTP status answered)
        self.attempts: list[tuple[float, int, dict[str, Any], int]] = []
        #: the messages delivered
        self.sent: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (path, method)
        self._updates: list[dict[str, Any]] = []
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{bot_token:str}/{method:str}", self.endpoint, methods=["GET", "POST"])])

    # --- what a test makes happen in Telegram ----------------------------------------------------

    def user_writes(self, chat_id: int, text: str, *, first_name: str = "Анна", language_code: str = "ru") -> None:
        """A user sends a message to the bot (opening the deep link sends ``/start <code>``)."""
        user = {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        self.chats[chat_id] = user
        self._updates.append(
            {
                "update_id": next(_update_ids),
                "message": {
                    "message_id": next(self._message_ids),
                    "from": user,
                    "chat": {"id": chat_id, "type": "private", "first_name": first_name},
                    "date": int(time.time()),
                    "text": text,
                },
            }
        )
        self._new_update.set()

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["chat_id"] == chat_id]

    # --- the API -----------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> JSONResponse:
        bot_token, method = request.path_params["bot_token"], request.path_params["method"]
        self.requests.append((request.url.path.replace(bot_token, "bot<token>"), method))
        if bot_token != f"bot{self.token}":
            return _fail(401, "Unauthorized")
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                payload = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return _fail(400, "Bad Request: can't parse JSON")
        else:
            payload = dict(parse_qsl(raw.decode()))
        if not isinstance(payload, dict):
            return _fail(400, "Bad Request: parameters must be an object")
        handler = {"getMe": self.get_me, "sendMessage": self.send_message, "getUpdates": self.get_updates}.get(method)
        if handler is None:
            return _fail(404, "Not Found")
        return await handler(payload)

    async def get_me(self, payload: dict[str, Any]) -> JSONResponse:
        return JSONResponse(
            {
                "ok": True,
                "result": {"id": self.bot_id, "is_bot": True, "first_name": "Perezvon", "username": self.username},
            }
        )

    async def get_updates(self, payload: dict[str, Any]) -> JSONResponse:
        try:
            offset = int(payload.get("offset") or 0)
            timeout = float(payload.get("timeout") or 0)
        except (TypeError, ValueError):
            return _fail(400, "Bad Request: wrong parameter")
        # an offset confirms every update before it: they are forgotten
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                pass
        return JSONResponse({"ok": True, "result": list(self._updates[:100])})

    async def send_message(self, payload: dict[str, Any]) -> JSONResponse:
        response = self._send_message(payload)
        chat = payload.get("chat_id")
        self.attempts.append((time.monotonic(), chat if isinstance(chat, int) else 0, payload, response.status_code))
        return response

    def _send_message(self, payload: dict[str, Any]) -> JSONResponse:
        try:
            chat_id = int(payload.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return _fail(400, "Bad Request: chat_id is empty")
        if chat_id not in self.chats:
            return _fail(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return _fail(403, "Forbidden: bot was blocked by the user")
        queued = self.fail_next.get(chat_id)
        if queued:
            status, retry_after = queued.pop(0)
            if status == 429:
                return _fail(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
            return _fail(status, "Internal Server Error" if status >= 500 else "Bad Request")
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            return _fail(400, "Bad Request: message text is empty")
        if payload.get("parse_mode") not in (None, "HTML"):
            return _fail(400, "Bad Request: unsupported parse_mode")
        plain = text
        if payload.get("parse_mode") == "HTML":
            try:
                plain = parse_html(text)
            except HtmlError as exc:
                return _fail(400, f"Bad Request: can't parse entities: {exc}")
        if len(plain) > 4096:
            return _fail(400, "Bad Request: message is too long")
        markup = payload.get("reply_markup")
        if markup is not None:
            rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                return _fail(400, "Bad Request: can't parse reply keyboard markup JSON object")
            for row in rows:
                for button in row:
                    url = button.get("url") if isinstance(button, dict) else None
                    if not (isinstance(button, dict) and button.get("text") and isinstance(url, str)):
                        return _fail(400, "Bad Request: can't parse inline keyboard button")
                    if not re.match(r"^https?://[^\s/]+", url):
                        return _fail(400, "Bad Request: inline keyboard button URL is invalid: Wrong HTTP URL")
        message = {"message_id": next(self._message_ids), "chat_id": chat_id, "text": text, "plain": plain}
        message["reply_markup"] = markup
        self.sent.append(message)
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": message["message_id"],
                    "from": {"id": self.bot_id, "is_bot": True, "username": self.username},
                    "chat": {"id": chat_id, "type": "private"},
                    "date": int(time.time()),
                    "text": plain,
                },
            }
        )
