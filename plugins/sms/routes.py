"""The public opt-out page, ``/p/sms/stop/<token>``: opening the link from a message unsubscribes
the number from the connection's messages and says so, in Russian or English (the browser's choice)."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from perezvon.api import DEFAULT_LOCALE, LOCALES, compiled_translations
from perezvon.plugins.sms.sending import opt_out

LOCALE_DIR = Path(__file__).with_name("locales")
PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:30em;margin:3em auto;padding:0 1em;color:#222}}</style>
</head><body><h1>{title}</h1><p>{text}</p></body></html>
"""


def _locale(request: Request) -> str:
    asked = request.query_params.get("lang", "")
    if asked in LOCALES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LOCALES:
            return tag
    return DEFAULT_LOCALE


def _page(locale: str, title: str, text: str, status: int, tail: str = "") -> HTMLResponse:
    tr = compiled_translations(LOCALE_DIR, locale)
    body = tr.gettext(text).replace("{tail}", tail)
    return HTMLResponse(
        PAGE.format(lang=locale, title=html.escape(tr.gettext(title)), text=html.escape(body)),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def stop(request: Request) -> HTMLResponse:
    locale = _locale(request)
    token = request.path_params["token"]
    found = await opt_out(token) if 8 <= len(token) <= 32 else None
    if found is None:
        return _page(
            locale, "Link not found", "This unsubscribe link is not valid. Check that it was copied whole.", 404
        )
    return _page(
        locale,
        "You are unsubscribed",
        "The number ending in {tail} will get no more messages from this company.",
        200,
        found.phone[-4:],
    )


ROUTES = [Route("/stop/{token}", stop, methods=["GET", "POST"])]
