"""Local HTTP services answering as SMS.ru, SMSC and a generic gateway do, for the SMS tests (no tests here).

:class:`Providers` is one real HTTP/1.1 server on 127.0.0.1 with three endpoints, each following
its provider's documented request shape, authentication and error answers (docs/sms.md):

* ``POST /sms/send`` -- SMS.ru: form ``api_id``, ``to``, ``msg``, ``json=1``; a wrong ``api_id`` is
  ``{"status": "ERROR", "status_code": 200}``, a wrong number is per-number status 202, and a
  scripted code (201 no money, 220 "try later") can be forced;
* ``POST /sys/send.php`` -- SMSC: form ``login``, ``psw``, ``phones``, ``mes``, ``fmt=3``,
  ``charset=utf-8``; a wrong login is ``{"error": ..., "error_code": 2}``, a wrong phone 7, and a
  scripted code (9 "too many identical requests", 3 no money) can be forced;
* ``GET|POST /gw/send?to=..&text=..`` -- a gateway wanting ``Authorization: Bearer <token>``
  (401 without it), with scripted statuses (503).

Used by tests/test_sms.py and tests/test_reach_demo.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

SMSRU_KEY = "7A1B2C3D-0000-1111-2222-333344445555"
SMSC_LOGIN, SMSC_PASSWORD = "myshop", "smsc-pa$$word"
GATEWAY_TOKEN = "gw-token-42"


class Providers:
    """SMS.ru, SMSC and a gateway on one local port; every accepted message is in :attr:`sent`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.sent: list[tuple[str, str, str]] = []  # (provider, phone digits, text)
        self.forced: list[int] = []  # codes (or HTTP statuses for the gateway) to answer next, in order
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Providers:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def answer(self, method: str, path: str, headers: dict[str, str], params: dict[str, str]) -> tuple[int, object]:
        forced = self.forced.pop(0) if self.forced else None
        if path == "/sms/send":  # SMS.ru
            if params.get("api_id") != SMSRU_KEY:
                return 200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
            if params.get("json") != "1":
                return 200, "200"  # without json=1 SMS.ru answers plain text
            if forced in (201, 220):
                return 200, {"status": "ERROR", "status_code": forced, "status_text": "..."}
            to, msg = params.get("to", ""), params.get("msg", "")
            if not msg:
                return 200, {"status": "ERROR", "status_code": 203, "status_text": "Нет текста сообщения"}
            if not re.fullmatch(r"7\d{10}", to):
                entry = {"status": "ERROR", "status_code": 202, "status_text": "Неправильно указан номер"}
                return 200, {"status": "OK", "status_code": 100, "sms": {to: entry}, "balance": 100.5}
            self.sent.append(("smsru", to, msg))
            entry = {"status": "OK", "status_code": 100, "sms_id": f"000000-{len(self.sent)}"}
            return 200, {"status": "OK", "status_code": 100, "sms": {to: entry}, "balance": 100.5}
        if path == "/my/balance":  # SMS.ru's balance: what the settings check reads
            if params.get("api_id") != SMSRU_KEY:
                return 200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
            return 200, {"status": "OK", "status_code": 100, "balance": 100.5}
        if path == "/sys/balance.php":  # SMSC's balance
            if (params.get("login"), params.get("psw")) != (SMSC_LOGIN, SMSC_PASSWORD):
                return 200, {"error": "authorise error", "error_code": 2}
            return 200, {"balance": "100.50", "currency": "RUR"}
        if path == "/sys/send.php":  # SMSC
            if params.get("fmt") != "3" or params.get("charset") != "utf-8":
                return 200, "ERROR = 1 (parameters error)"
            if (params.get("login"), params.get("psw")) != (SMSC_LOGIN, SMSC_PASSWORD):
                return 200, {"error": "authorise error", "error_code": 2}
            if forced in (3, 4, 9):
                return 200, {"error": "forced", "error_code": forced}
            if not re.fullmatch(r"7\d{10}", params.get("phones", "")):
                return 200, {"error": "invalid number", "error_code": 7}
            self.sent.append(("smsc", params["phones"], params.get("mes", "")))
            return 200, {"id": len(self.sent), "cnt": 1}
        if path in ("/gw/send", "/gw/basic"):  # a generic gateway: a bearer token, or basic auth
            wanted = (
                f"Bearer {GATEWAY_TOKEN}"
                if path == "/gw/send"
                else "Basic " + base64.b64encode(f"{SMSC_LOGIN}:{SMSC_PASSWORD}".encode()).decode()
            )
            if headers.get("authorization") != wanted:
                return 401, {"error": "unauthorized"}
            if forced:
                return forced, {"error": "forced"}
            self.sent.append(("gateway", params.get("to", ""), params.get("text", "")))
            return 202, {"queued": True}
        return 404, {"error": "no such endpoint"}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, value = header.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                parts = urlsplit(target)
                raw = parts.query if method == "GET" else body.decode("utf-8")
                if method == "POST" and not parts.path.startswith("/gw/"):
                    assert headers.get("content-type") == "application/x-www-form-urlencoded"
                params = {k: v[0] for k, v in parse_qs(raw or parts.query, keep_blank_values=True).items()}
                self.requests.append((method, parts.path, headers, params))
                status, payload = self.answer(method, parts.path, headers, params)
                data = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
