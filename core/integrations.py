"""What every integration needs: outgoing HTTP mapped onto delivery errors, and secret settings.

:class:`HttpPush` is the one way integrations talk to a service: a pooled
httpx client with a short timeout, whose failures become
:class:`core.registry.DeliveryError` the delivery job understands -- network
errors, timeouts, 429 and 5xx are retried with back-off, other 4xx are not.
Secrets (API keys, tokens) passed to it never appear in an error it raises,
so they never reach the deliveries table, a log line or the admin.

:func:`mask_secrets` and :func:`merge_secrets` implement SPEC S5's "after
saving, the key is shown as ``****`` and never sent back to the browser":
fields whose schema metadata says ``secret`` are masked on the way out, and a
form that sends the mask (or nothing) back keeps the stored value.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
from marshmallow import Schema

from core.registry import DeliveryError

MASK = "****"
#: how much of an answer is kept with a delivery
EXCERPT = 300


def secret_fields(schema: type[Schema] | Schema) -> set[str]:
    instance = schema() if isinstance(schema, type) else schema
    return {name for name, field in instance.fields.items() if field.metadata.get("secret")}


def mask_secrets(schema: type[Schema] | Schema, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as a browser may see them: every non-empty secret replaced by ``****``."""
    hidden = secret_fields(schema)
    return {key: (MASK if key in hidden and value else value) for key, value in settings.items()}


def merge_secrets(schema: type[Schema] | Schema, submitted: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """What to validate and save: a secret sent back as ``****`` (or left out) keeps its stored value."""
    merged = dict(submitted)
    for key in secret_fields(schema):
        if merged.get(key) in (None, MASK) and stored.get(key):
            merged[key] = stored[key]
    return merged


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def excerpt(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """``"<status> <start of the body>"``, the way a delivery is shown in the admin."""
    body = " ".join(response.text.split())
    return redact(f"{response.status_code} {body}".strip()[:EXCERPT], secrets)


class HttpPush:
    """A pooled HTTP client for one integration; answers are classified for the delivery job.

    The client is bound to the event loop it was made in (httpx pools are), so
    a new one is made when the loop changes (a new worker, a new test).
    """

    def __init__(self, *, timeout: float = 10.0, user_agent: str = "Perezvon-integrations/1") -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"HttpPush(timeout={self.timeout})"

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, headers={"User-Agent": self.user_agent}, follow_redirects=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
            self._loop = loop
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def send(self, method: str, url: str, *, secrets: Iterable[str] = (), timeout: float | None = None,
                   **kwargs: Any) -> httpx.Response:
        """Send one request; return the 2xx/3xx response, else raise :class:`DeliveryError`.

        ``secrets`` are strings (keys, tokens) to blank out of any message
        this raises, since the message is stored and shown.
        """
        secrets = tuple(s for s in secrets if s)
        timeout = timeout or self.timeout
        try:
            response = await self.client().request(method, url, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"no answer within {timeout:g} s ({type(exc).__name__})", retry=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(redact(f"network error: {type(exc).__name__}: {exc}", secrets), retry=True) from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise DeliveryError(f"the service answered {status}; trying again later", retry=True, status=status,
                                response=excerpt(response, secrets))
        if status >= 400:
            raise DeliveryError(f"the service refused the request ({status})", retry=False, status=status,
                                response=excerpt(response, secrets))
        return response


def json_body(response: httpx.Response, secrets: Iterable[str] = ()) -> Any:
    """The JSON of a 2xx answer; a body that is not JSON is a failure trying again cannot fix."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise DeliveryError("the service answered with something that is not JSON", retry=False,
                            status=response.status_code, response=excerpt(response, secrets)) from None
