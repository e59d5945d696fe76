"""What every integration needs: outgoing HTTP mapped onto delivery errors.

:class:`HttpPush` is the one way integrations talk to a service: a pooled
httpx client with a short timeout, whose failures become
:class:`perezvon.core.registry.DeliveryError` the delivery job understands -- network
errors, timeouts, 429 and 5xx are retried with back-off, other 4xx are not.
Secrets (API keys, tokens) passed to it never appear in an error it raises,
so they never reach the deliveries table, a log line or the admin.

Integrations see httpx's API (requests, :class:`httpx.Response`), but the
bytes go through aiohttp, by the ``httpx-aiohttp`` transport (written by an
httpx maintainer). httpx's own transport costs 1.1-2.2 ms of CPU per POST to
a local service (its connection pool is scanned under a lock on every
request, over anyio streams); through aiohttp the same POST costs about
0.3 ms (``bench/http_push.py``), and pushes are what a deliveries worker
spends its CPU on (BENCHMARKS.md, "Integration deliveries").

Every request goes through the outgoing-request guard (:mod:`perezvon.core.outgoing`):
only public addresses are reached, unless the deployment's allow-list names
the network; a refused address is a :class:`perezvon.core.outgoing.AddressNotAllowed`,
a delivery failure that is stored and not retried.

Secret settings are masked for browsers by :mod:`perezvon.core.enablement`
(``mask_secrets`` / ``merge_secrets``), with the rest of a plugin's settings.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import urllib.request
import weakref
from collections.abc import Iterable
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from perezvon.core.enablement import MASK
from perezvon.core.outgoing import GuardedResolver, GuardedTransport, find_refusal
from perezvon.core.registry import DeliveryError

#: how much of an answer is kept with a delivery
EXCERPT = 300
#: connections per integration and event loop: a worker runs at most ``perezvon.core.worker.DELIVERY_MAX_JOBS`` pushes
MAX_CONNECTIONS = 200


#: the secrets of the requests in flight: httpx logs each request's URL (INFO, logger "httpx"), and a
#: secret may be part of the URL (a Bitrix24 incoming webhook is ``/rest/<user>/<secret>/``)
_secrets_in_flight: collections.Counter[str] = collections.Counter()


class _RedactSecrets(logging.Filter):
    """Blanks the secrets of the requests in flight out of httpx's log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets_in_flight:
            message = record.getMessage()
            redacted = redact(message, list(_secrets_in_flight))
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


logging.getLogger("httpx").addFilter(_RedactSecrets())


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def excerpt(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """``"<status> <start of the body>"``, the way a delivery is shown in the admin."""
    body = " ".join(response.text.split())
    return redact(f"{response.status_code} {body}".strip()[:EXCERPT], secrets)


#: every HttpPush with an open client, so that a stopping worker can close them all (:func:`close_clients`)
_open_pushes: weakref.WeakSet[HttpPush] = weakref.WeakSet()


async def close_clients() -> None:
    """Close the connection pools of every :class:`HttpPush` made on the running event loop.

    Called when a worker (or the app) stops, so that plugins need no shutdown code of their own.
    """
    for push in list(_open_pushes):
        await push.close()


class HttpPush:
    """A pooled HTTP client for one integration; answers are classified for the delivery job.

    The client is bound to the event loop it was made in (connection pools are), so
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
                timeout=self.timeout,
                headers={"User-Agent": self.user_agent},
                follow_redirects=False,
                transport=_transport(),
            )
            self._loop = loop
            _open_pushes.add(self)
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None
        _open_pushes.discard(self)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request through the pooled client, whatever the status of its answer (``send``
        judges it; a plugin that reads its service's own error answers calls this). A request
        that gets no answer raises what httpx raises, and a refused address
        :class:`AddressNotAllowed` (itself, or as the cause of httpx's error)."""
        response = await self.client().request(method, url, **kwargs)
        # The body is read and the connection back in its pool; what is left of the stream is
        # a reference cycle (the response and its stream refer to each other, the stream holds
        # aiohttp's response, reader and timer): ~40 objects a request that only the garbage
        # collector frees, and its passes stall the dials in the same process. The body as
        # bytes keeps all httpx offers (.content, .json(), .text) and is freed by refcount.
        response.stream = httpx.ByteStream(response.content)
        return response

    async def send(
        self, method: str, url: str, *, secrets: Iterable[str] = (), timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send one request; return the 2xx/3xx response, else raise :class:`DeliveryError`.

        ``secrets`` are strings (keys, tokens) to blank out of any message
        this raises, since the message is stored and shown.
        """
        secrets = tuple(s for s in secrets if s)
        timeout = timeout or self.timeout
        _secrets_in_flight.update(secrets)
        try:
            response = await self.request(method, url, timeout=timeout, **kwargs)
        except httpx.HTTPError as exc:
            refused = find_refusal(exc)
            if refused is not None:
                raise refused from None
            # the transport's own error says what happened: httpx-aiohttp names a refused
            # connection ConnectTimeout, so the httpx class alone would call it a timeout
            cause = exc.__cause__ or exc
            if isinstance(cause, TimeoutError):
                raise DeliveryError(
                    f"no answer within {timeout:g} s ({type(exc).__name__})", retry=True, timed_out=True
                ) from None
            raise DeliveryError(
                redact(f"network error: {type(cause).__name__}: {cause}", secrets), retry=True
            ) from None
        finally:
            _secrets_in_flight.subtract(secrets)
            for secret in secrets:
                if _secrets_in_flight[secret] <= 0:
                    del _secrets_in_flight[secret]
        status = response.status_code
        if status >= 500 or status == 429:
            raise DeliveryError(
                f"the service answered {status}; trying again later",
                retry=True,
                status=status,
                response=excerpt(response, secrets),
            )
        if status >= 400:
            raise DeliveryError(
                f"the service refused the request ({status})",
                retry=False,
                status=status,
                response=excerpt(response, secrets),
            )
        return response


def guarded_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client whose every request, redirects included, goes through the outgoing guard.

    For one-off requests to an address a user typed (the admin's installation check);
    integrations use :class:`HttpPush`, which pools its client.
    """
    return httpx.AsyncClient(transport=_transport(), **options)


def _aiohttp_session(*, guarded: bool = True) -> aiohttp.ClientSession:
    """The aiohttp session under an :class:`HttpPush` client, made on the loop that will use it.

    Certificates are checked against the bundle httpx uses (certifi). aiohttp's own
    ``trust_env`` stays off: it would read ``~/.netrc`` in a thread on every request, a
    fifth of a deliveries worker's CPU; proxies are honoured by :func:`_transport` instead.
    A guarded session connects only to addresses the outgoing guard let through; the
    session to a proxy the deployment configured is not guarded (the proxy may well be
    in the local network), its requests' targets are checked by :func:`_transport`.
    """
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS, ssl=httpx.create_ssl_context(), resolver=GuardedResolver() if guarded else None
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def _proxy_session() -> aiohttp.ClientSession:
    return _aiohttp_session(guarded=False)


def _transport() -> httpx.AsyncBaseTransport:
    """Direct, unless the environment names a proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``)."""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get("http") or proxies.get("https")):
        return GuardedTransport(AiohttpTransport(client=_aiohttp_session))
    return _EnvironmentProxies(proxies)


class _EnvironmentProxies(httpx.AsyncBaseTransport):
    """Each request through the proxy the environment names for its scheme, unless ``NO_PROXY``
    lists its host -- what curl, httpx and most tools do with these variables."""

    def __init__(self, proxies: dict[str, str]) -> None:
        self.proxies = proxies
        self.direct = GuardedTransport(AiohttpTransport(client=_aiohttp_session))
        # the proxy resolves the target itself: the guard resolves and checks it before sending
        self.through = {
            scheme: GuardedTransport(
                AiohttpTransport(client=_proxy_session, proxy=httpx.Proxy(proxies[scheme])), resolve=True
            )
            for scheme in ("http", "https")
            if proxies.get(scheme)
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.through.get(request.url.scheme, self.direct)
        if transport is not self.direct and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            request.url.host, self.proxies
        ):  # undocumented, so not in typeshed; what getproxies() pairs with
            transport = self.direct
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self.direct, *self.through.values()):
            await transport.aclose()


def json_body(response: httpx.Response, secrets: Iterable[str] = ()) -> Any:
    """The JSON of a 2xx answer; a body that is not JSON is a failure trying again cannot fix."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise DeliveryError(
            "the service answered with something that is not JSON",
            retry=False,
            status=response.status_code,
            response=excerpt(response, secrets),
        ) from None
