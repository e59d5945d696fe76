"""A local amoCRM account speaking the documented API v4 and OAuth 2.0, for the amoCRM tests (no tests here).

:class:`AmoCRM` is a real HTTP/1.1 server on 127.0.0.1 (``asyncio.start_server``; the caller sets
:attr:`AmoCRM.server`) that follows amoCRM's documented API v4 as far as the plugin uses it:
``POST /oauth2/access_token`` issues tokens for a one-time code, rotates the refresh token on every
refresh and refuses a used code or refresh token (400) and a wrong client secret (401); the
``/api/v4`` endpoints need ``Authorization: Bearer`` with a live access token (401 otherwise),
validate their JSON bodies (400 with ``validation-errors``), answer 204 to a search that finds
nothing, and answer 429 (or anything) when a test asks (:attr:`AmoCRM.faults`). Used by
tests/test_amocrm.py and tests/test_reach_demo.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "0a1b2c3d-0000-4000-8000-0123456789ab"
CLIENT_SECRET = "s3cr3t-Xq9v8LmN4oP2rT6uW1yZ"
REDIRECT = "https://crm.example.com/amocrm/callback"
PIPELINE, FIRST_STATUS, OTHER_STATUS = 5501, 142001, 142002
NOTE_TYPES = {"common", "call_in", "call_out", "service_message", "sms_in", "sms_out"}
LEAD_KEYS = {"name", "price", "status_id", "pipeline_id", "responsible_user_id", "_embedded", "request_id"}
PHONE_ENUMS = {"WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"}


def problem(status: int, title: str, detail: str = "", **more: Any) -> tuple[int, dict[str, Any]]:
    """amoCRM's error bodies are application/problem+json."""
    return status, {
        "title": title,
        "type": "https://httpstatus.es/" + str(status),
        "status": status,
        "detail": detail,
        **more,
    }


def phones(contact: dict[str, Any]) -> list[str]:
    return [
        v["value"]
        for f in contact.get("custom_fields_values") or []
        if f.get("field_code") == "PHONE"
        for v in f.get("values") or []
    ]


class AmoCRM:
    """The emulator: one account, one integration (CLIENT_ID), its state in plain dicts."""

    def __init__(self) -> None:
        self.codes: set[str] = set()
        self.access: dict[str, float] = {}  # token -> expires (monotonic)
        self.refresh: set[str] = set()
        self.used_refresh: set[str] = set()
        self.expires_in = 86400
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.pipelines = {PIPELINE: [FIRST_STATUS, OTHER_STATUS], 1: [10, 11]}
        self.faults: list[tuple[str, str, int]] = []  # (method, path regex, status): answered once
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.ids = itertools.count(1000)
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def new_code(self) -> str:
        code = "def50200" + secrets.token_hex(40)
        self.codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        for token in self.access:
            self.access[token] = 0.0

    def calls(self, method: str, path: str) -> list[Any]:
        return [
            json.loads(b or "null")
            for m, t, _, b in self.requests
            if m == method and re.fullmatch(path, urlsplit(t).path)
        ]

    # --- the routes ----------------------------------------------------------------------------

    def token(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return problem(400, "Bad request", "The request body is not JSON")
        if body.get("client_id") != CLIENT_ID or body.get("client_secret") != CLIENT_SECRET:
            return 401, {"hint": "Client authentication failed", "title": "Unauthorized", "status": 401}
        if body.get("redirect_uri") != REDIRECT:
            return problem(400, "Bad request", "Redirect URI mismatch")
        grant = body.get("grant_type")
        if grant == "authorization_code":
            if body.get("code") not in self.codes:
                return 400, {
                    "hint": "Authorization code has been revoked",
                    "title": "Некорректный запрос",
                    "status": 400,
                }
            self.codes.discard(body["code"])
        elif grant == "refresh_token":
            if body.get("refresh_token") not in self.refresh:
                return 400, {"hint": "Token has been revoked", "title": "Некорректный запрос", "status": 400}
            self.refresh.discard(body["refresh_token"])
            self.used_refresh.add(body["refresh_token"])
        else:
            return problem(400, "Bad request", "grant_type")
        access, refresh = "eyJ0" + secrets.token_hex(32), "def50200" + secrets.token_hex(48)
        self.access[access] = time.monotonic() + self.expires_in
        self.refresh.add(refresh)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "access_token": access,
            "refresh_token": refresh,
        }

    def api(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/v4/account"):
            return 200, {"id": 31000000, "name": "Test account", "subdomain": "test"}
        if m := re.fullmatch(r"/api/v4/leads/pipelines/(\d+)", path):
            statuses = self.pipelines.get(int(m[1]))
            if statuses is None:
                return problem(404, "Not Found")
            return 200, {"id": int(m[1]), "_embedded": {"statuses": [{"id": s} for s in statuses]}}
        if (method, path) == ("GET", "/api/v4/contacts"):
            wanted = (query.get("query") or [""])[0]
            # amoCRM matches a query against names and, by their digits, phones however they were typed
            digits = re.sub(r"\D", "", wanted)[-10:]
            found = [
                c
                for c in self.contacts.values()
                if wanted
                and (wanted in c.get("name", "") or (digits and any(digits in re.sub(r"\D", "", p) for p in phones(c))))
            ]
            return (200, {"_embedded": {"contacts": found}}) if found else (204, None)
        if (method, path) == ("POST", "/api/v4/contacts"):
            errors = []
            for i, contact in enumerate(body if isinstance(body, list) and body else [None]):
                if not isinstance(contact, dict) or not isinstance(contact.get("name", ""), str):
                    errors.append(
                        {
                            "request_id": str(i),
                            "errors": [{"path": "name", "detail": "This value should be of type string."}],
                        }
                    )
                    continue
                for field in contact.get("custom_fields_values") or []:
                    values = field.get("values") if isinstance(field, dict) else None
                    if (
                        field.get("field_code") != "PHONE"
                        or not values
                        or any(
                            not isinstance(v.get("value"), str) or v.get("enum_code") not in PHONE_ENUMS for v in values
                        )
                    ):
                        errors.append(
                            {"request_id": str(i), "errors": [{"path": "custom_fields_values", "detail": "invalid"}]}
                        )
            if errors:
                return problem(400, "Bad Request", "Request validation failed", **{"validation-errors": errors})
            made = []
            for i, contact in enumerate(body):
                new_id = next(self.ids)
                self.contacts[new_id] = {"id": new_id, **contact}
                made.append({"id": new_id, "request_id": str(i)})
            return 200, {"_embedded": {"contacts": made}}
        if (method, path) == ("POST", "/api/v4/leads"):
            if not isinstance(body, list) or not body:
                return problem(400, "Bad Request", "Request validation failed")
            for lead in body:
                if not isinstance(lead, dict) or set(lead) - LEAD_KEYS or not isinstance(lead.get("name"), str):
                    return problem(
                        400, "Bad Request", "Request validation failed", **{"validation-errors": [{"path": "lead"}]}
                    )
                pipeline = lead.get("pipeline_id", 1)
                if (
                    pipeline not in self.pipelines
                    or lead.get("status_id", self.pipelines[pipeline][0]) not in self.pipelines[pipeline]
                ):
                    return problem(
                        400,
                        "Bad Request",
                        "Request validation failed",
                        **{"validation-errors": [{"path": "status_id"}]},
                    )
                for contact in (lead.get("_embedded") or {}).get("contacts") or []:
                    if contact.get("id") not in self.contacts:
                        return problem(
                            400,
                            "Bad Request",
                            "Request validation failed",
                            **{"validation-errors": [{"path": "contacts"}]},
                        )
            made = []
            for lead in body:
                new_id = next(self.ids)
                self.leads[new_id] = {"id": new_id, **lead}
                made.append({"id": new_id, "request_id": lead.get("request_id", "0")})
            return 200, {"_embedded": {"leads": made}}
        if (m := re.fullmatch(r"/api/v4/leads/(\d+)/notes", path)) and method == "POST":
            if int(m[1]) not in self.leads:
                return problem(404, "Not Found")
            for note in body if isinstance(body, list) and body else [None]:
                params = note.get("params") if isinstance(note, dict) else None
                kind = note.get("note_type") if isinstance(note, dict) else None
                ok = kind in NOTE_TYPES and isinstance(params, dict)
                if ok and kind == "common":
                    ok = isinstance(params.get("text"), str) and bool(params["text"])
                if ok and kind in ("call_in", "call_out"):
                    ok = (
                        isinstance(params.get("uniq"), str)
                        and isinstance(params.get("duration"), int)
                        and isinstance(params.get("source"), str)
                        and isinstance(params.get("phone"), str)
                        and isinstance(params.get("link", ""), str)
                        and params.get("call_status", 4) in range(1, 8)
                    )
                if not ok:
                    return problem(
                        400, "Bad Request", "Request validation failed", **{"validation-errors": [{"path": "params"}]}
                    )
            made = []
            for note in body:
                new_id = next(self.ids)
                self.notes.append({"id": new_id, "entity_id": int(m[1]), **note})
                made.append({"id": new_id, "entity_id": int(m[1])})
            return 200, {"_embedded": {"notes": made}}
        return problem(404, "Not Found")

    def answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        for i, (f_method, f_path, status) in enumerate(self.faults):
            if f_method == method and re.fullmatch(f_path, parts.path):
                del self.faults[i]
                return problem(status, "Too Many Requests" if status == 429 else "Injected", "asked by the test")
        body = None
        if raw:
            if not headers.get("content-type", "").startswith("application/json"):
                return problem(400, "Bad Request", "Content-Type must be application/json")
            try:
                body = json.loads(raw)
            except ValueError:
                return problem(400, "Bad Request", "The request body is not JSON")
        if parts.path == "/oauth2/access_token" and method == "POST":
            return self.token(body)
        if parts.path.startswith("/api/v4/"):
            auth = headers.get("authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
            if self.access.get(token, 0.0) <= time.monotonic():
                return problem(401, "Unauthorized", "Access token is invalid or expired")
            return self.api(method, parts.path, parse_qs(parts.query), body)
        return problem(404, "Not Found")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, value = header.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append((method, target, headers, raw))
                status, payload = self.answer(method, target, headers, raw)
                data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
                kind = "application/problem+json" if status >= 400 else "application/hal+json"
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
