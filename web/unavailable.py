"""503 rather than 500 while Redis or the database is down (docs/deploy.md, "During an outage")."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from perezvon.core.i18n import gettext, negotiate
from perezvon.core.outages import is_outage

log = logging.getLogger("perezvon.web")

#: what a person or a client is told while Redis or the database is down; clients may retry after this
UNAVAILABLE = "The service is temporarily unavailable, try again in a minute."
RETRY_AFTER_SECONDS = 10


async def unavailable(request: Request, exc: Exception) -> Response:
    """The answer to a request that failed on a lost Redis or database connection; other errors are re-raised.

    Nothing the visitor sent is lost by it: a lead is answered 201 only once it
    is stored, so a 503 tells the site script to send it again.
    """
    if not is_outage(exc):
        raise exc
    log.warning("%s %s: answered 503, %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    locale = negotiate(request.headers.get("accept-language"))
    message = gettext(UNAVAILABLE, locale)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/"):
        return HTMLResponse(
            f'<!doctype html><html lang="{locale}"><meta charset="utf-8"><title>503</title><p>{message}</p></html>',
            status_code=503,
            headers=headers,
        )
    return JSONResponse({"errors": {"_schema": [message]}}, status_code=503, headers=headers)
