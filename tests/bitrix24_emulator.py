"""A local Bitrix24 portal speaking the REST API by incoming webhook, as Bitrix24 documents it.

Written from the REST documentation (https://apidocs.bitrix24.ru, the ``bitrix24/b24restdocs``
repository): ``POST /rest/<user id>/<secret>/<method>.json`` (``.json`` may be left out; method names
are case-insensitive) with a JSON or form body (PHP brackets, ``fields[NAME]=...``); the answer is
``{"result": ..., "time": {...}}`` or ``{"error": "...", "error_description": "..."}``:

* a wrong user id or secret: 401 ``INVALID_CREDENTIALS``; an unknown method: 404 ``ERROR_METHOD_NOT_FOUND``;
* a method without its required parameters: 400 (the wording of Bitrix24's own messages);
* :meth:`Bitrix24Emulator.limit` makes the next calls of a method answer 503 ``QUERY_LIMIT_EXCEEDED``,
  Bitrix24's rate limit ("Too many requests");
* ``telephony.externalcall.register`` returns the same ``CALL_ID`` for the same phone, type, user and
  ``EXTERNAL_CALL_ID`` while that call is not finished; ``finish`` of an unknown or finished call and
  ``attachRecord`` before ``finish`` are refused, as documented.

It keeps the CRM (contacts, leads, deals), the telephony calls, the statistics and the records, and
logs every request as ``(method, params)`` in :attr:`Bitrix24Emulator.calls`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PATH = re.compile(r"/rest/(?P<user>[^/]+)/(?P<secret>[^/]+)/(?P<method>[A-Za-z0-9_.]+?)(?:\.json)?")


class RestError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def php_form(body: str) -> dict[str, Any]:
    """``a[b][0]=x&c=y`` -> ``{"a": {"b": {"0": "x"}}, "c": "y"}``; lists are dicts with digit keys, as PHP reads them."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        names = re.findall(r"[^\[\]]+|\[\]", key)
        target = out
        for name in names[:-1]:
            target = target.setdefault(name, {})
        target[names[-1] if names else key] = value
    return out


def listed(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def digits(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone))


class Bitrix24Emulator:
    def __init__(self, user_id: str = "1", secret: str = "w3bh00ksecretabc9") -> None:
        self.user_id, self.secret = user_id, secret
        self.scopes = ["crm", "telephony", "user"]
        self.users = {1: {"ID": "1", "NAME": "Анна", "ACTIVE": True}, 7: {"ID": "7", "NAME": "Олег", "ACTIVE": True}}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.telephony: dict[str, dict[str, Any]] = {}
        self.statistics: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.refused: list[tuple[str, int, str]] = []
        self._limits: dict[str, int] = {}
        self._ids = itertools.count(101)
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Bitrix24Emulator:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def origin(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def webhook(self) -> str:
        return f"{self.origin}/rest/{self.user_id}/{self.secret}/"

    def limit(self, method: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 503 QUERY_LIMIT_EXCEEDED."""
        self._limits[method.lower()] = times

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method.lower()]

    # --- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, value = header.decode("latin-1").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, answer = self.answer(verb, target, headers.get("content-type", ""), body)
                data = json.dumps(answer, ensure_ascii=False).encode()
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

    def answer(self, verb: str, target: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        started = time.time()
        path = urlsplit(target)
        found = PATH.fullmatch(path.path)
        method = found["method"].lower() if found else ""
        try:
            if found is None:
                raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            if (found["user"], found["secret"]) != (self.user_id, self.secret):
                raise RestError(401, "INVALID_CREDENTIALS", "Invalid request credentials")
            if verb not in ("GET", "POST"):
                raise RestError(405, "ERROR_METHOD_NOT_ALLOWED", "Method not allowed")
            text = body.decode("utf-8")
            if "json" in content_type:
                params = json.loads(text) if text else {}
            else:
                params = php_form(text or path.query)
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            self.calls.append((method, params))
            if self._limits.get(method):
                self._limits[method] -= 1
                raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            result = handler(params)
        except RestError as refused:
            self.refused.append((method, refused.status, refused.error))
            return refused.status, {"error": refused.error, "error_description": refused.description}
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "INVALID_REQUEST", "error_description": "The request body cannot be read"}
        return 200, {"result": result, "time": {"start": started, "finish": time.time()}}

    # --- methods -------------------------------------------------------------------------------

    @staticmethod
    def _fields(params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields") or params.get("FIELDS")
        if not isinstance(fields, dict) or not fields:
            raise RestError(400, "", "Parameter 'fields' must be array.")
        return fields

    def m_scope(self, params: dict[str, Any]) -> list[str]:
        return self.scopes

    def m_user_get(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = params.get("ID") or (params.get("FILTER") or {}).get("ID")
        return [u for i, u in self.users.items() if wanted in (None, "") or str(i) == str(wanted)]

    def m_crm_duplicate_findbycomm(self, params: dict[str, Any]) -> Any:
        kind, values = params.get("type"), params.get("values")
        if kind not in ("EMAIL", "PHONE"):
            raise RestError(400, "", "Communication type 'type' is not defined or invalid.")
        if not values:
            raise RestError(400, "", "Communication values 'values' is not defined.")
        entity = params.get("entity_type", "")
        wanted = {digits(v) for v in listed(values)}
        ids = sorted(
            i
            for i, contact in self.contacts.items()
            if any(digits(p.get("VALUE")) in wanted for p in listed(contact.get("PHONE") or []))
        )
        if entity not in ("", "CONTACT") or not ids:
            return []  # Bitrix24 answers an empty array, not an object, when nothing matched
        return {"CONTACT": ids}

    def _add(self, table: dict[int, dict[str, Any]], params: dict[str, Any]) -> int:
        fields = self._fields(params)
        new_id = next(self._ids)
        table[new_id] = {"ID": str(new_id), **fields}
        return new_id

    def m_crm_contact_add(self, params: dict[str, Any]) -> int:
        return self._add(self.contacts, params)

    def m_crm_lead_add(self, params: dict[str, Any]) -> int:
        return self._add(self.leads, params)

    def m_crm_deal_add(self, params: dict[str, Any]) -> int:
        return self._add(self.deals, params)

    def _list(self, table: dict[int, dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = params.get("filter") or {}
        rows = [row for row in table.values() if all(str(row.get(k)) == str(v) for k, v in wanted.items())]
        return [{"ID": row["ID"]} for row in rows]

    def m_crm_lead_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._list(self.leads, params)

    def m_crm_deal_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._list(self.deals, params)

    def _update(self, table: dict[int, dict[str, Any]], params: dict[str, Any], what: str) -> bool:
        row_id = str(params.get("id") or params.get("ID") or "")
        if not row_id.isdigit() or int(row_id) not in table:
            raise RestError(400, "", f"{what} is not found")
        table[int(row_id)].update(self._fields(params))
        return True

    def m_crm_lead_update(self, params: dict[str, Any]) -> bool:
        return self._update(self.leads, params, "Lead")

    def m_crm_deal_update(self, params: dict[str, Any]) -> bool:
        return self._update(self.deals, params, "Deal")

    def m_telephony_externalcall_register(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("USER_ID") or params.get("USER_PHONE_INNER") or "")
        if not user:
            raise RestError(400, "ERROR_CORE", "USER_ID or USER_PHONE_INNER should be set")
        if str(params.get("TYPE")) not in {"1", "2", "3", "4", "5"}:
            raise RestError(400, "ERROR_CORE", "Unknown TYPE")
        if not digits(params.get("PHONE_NUMBER") or ""):
            raise RestError(400, "ERROR_CORE", "Unsupported phone number format")
        if params.get("USER_ID") and int(params["USER_ID"]) not in self.users:
            raise RestError(400, "ERROR_CORE", "User is not found or is not active")
        start = params.get("CALL_START_DATE")
        if start and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", str(start)):
            raise RestError(400, "ERROR_CORE", "CALL_START_DATE should be in the ISO-8601 format")
        key = (digits(params["PHONE_NUMBER"]), str(params["TYPE"]), user, str(params.get("EXTERNAL_CALL_ID") or ""))
        for call in self.telephony.values():
            if call["key"] == key and not call["finished"]:
                return call["answer"]  # registered again before finish: the same CALL_ID
        call_id = f"externalCall.{next(self._ids):032x}.{int(time.time())}"
        answer = {
            "CALL_ID": call_id,
            "CRM_CREATED_LEAD": None,
            "CRM_CREATED_ENTITIES": [],
            "CRM_ENTITY_TYPE": params.get("CRM_ENTITY_TYPE"),
            "CRM_ENTITY_ID": params.get("CRM_ENTITY_ID"),
        }
        self.telephony[call_id] = {"key": key, "finished": False, "params": params, "answer": answer}
        return answer

    def m_telephony_externalcall_finish(self, params: dict[str, Any]) -> dict[str, Any]:
        call_id = params.get("CALL_ID")
        if not isinstance(call_id, str):
            raise RestError(400, "INVALID_ARGUMENT", "CALL_ID must be a string")
        if not (params.get("USER_ID") or params.get("USER_PHONE_INNER")):
            raise RestError(400, "ERROR_CORE", "USER_ID or USER_PHONE_INNER should be set")
        call = self.telephony.get(call_id)
        if call is None or call["finished"]:
            raise RestError(400, "ERROR_CORE", "Call is not found (call should be registered prior to finishing)")
        call["finished"] = True
        duration = int(params.get("DURATION") or 0)
        code = str(params.get("STATUS_CODE") or ("200" if duration > 0 else "304"))
        row = {
            "ID": len(self.statistics) + 1,
            "CALL_ID": call_id,
            "PORTAL_USER_ID": int(params["USER_ID"]),
            "PHONE_NUMBER": call["key"][0],
            "INCOMING": call["key"][1],
            "CALL_DURATION": duration,
            "CALL_STATUS": 1 if code == "200" else 0,
            "CALL_FAILED_CODE": code,
            "CALL_FAILED_REASON": params.get("FAILED_REASON") or "",
            "CRM_ENTITY_TYPE": call["answer"]["CRM_ENTITY_TYPE"],
            "CRM_ENTITY_ID": call["answer"]["CRM_ENTITY_ID"],
            "CRM_ACTIVITY_ID": next(self._ids),
        }
        self.statistics[call_id] = row
        return row

    def m_telephony_externalcall_attachrecord(self, params: dict[str, Any]) -> dict[str, Any]:
        call_id = params.get("CALL_ID")
        if not (params.get("RECORD_URL") or params.get("FILENAME")):
            raise RestError(
                400, "", "Required parameters are not set. Request should contain either URL or FILENAME parameter"
            )
        if call_id not in self.statistics:
            raise RestError(400, "", "Call is not found in the statistic table. It looks like it is not finished yet.")
        name = str(params.get("FILENAME") or "")
        if not name.lower().endswith((".mp3", ".wav")):
            raise RestError(400, "ERROR_CORE", "Wrong file extension. Only wav and mp3 are allowed")
        content = params.get("FILE_CONTENT")
        if not content:
            raise RestError(400, "ERROR_CORE", "File content is empty.")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise RestError(
                400, "ERROR_CORE", "File content is not properly encoded. Base64 encoding is expected."
            ) from None
        file_id = next(self._ids)
        self.records[call_id] = {"FILE_ID": file_id, "FILENAME": name, "data": data}
        return {"FILE_ID": file_id}
