"""``/p/reports/preferences``: a signed-in user's own choice of digest (daily, weekly, off) and alerts.

The choice is general, or for one site (``?connection=<id>``, a site the user may see); it is
kept in the user's ``preferences["reports"]`` (:func:`perezvon.plugins.reports.reports.choices`).
"""

from __future__ import annotations

import hmac
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from perezvon.api import LOCALES, Connection, admin_may_view, admin_signed_in, compiled_translations
from perezvon.plugins.reports.reports import PREFERENCE, choices
from perezvon.plugins.reports.schemas import DIGEST_CHOICES

LOCALE_DIR = Path(__file__).with_name("locales")
#: the admin's language cookie (its language switch), else the browser's first language
LANG_COOKIE = "pz_lang"
DIGEST_LABELS = {"daily": "Every day", "weekly": "Every Monday, for the past week", "off": "Off"}


def locale_of(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    first = (request.headers.get("accept-language") or "").split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "ru"


def page(request: Request, locale: str, body: str, status: int = 200) -> HTMLResponse:
    _ = compiled_translations(LOCALE_DIR, locale).gettext
    html = (
        f'<!DOCTYPE html><html lang="{locale}"><head><meta charset="utf-8">'
        f"<title>{escape(_('Digests and alerts'))}</title></head>"
        f'<body style="font-family:Arial,Helvetica,sans-serif;max-width:640px;margin:24px auto;">'
        f"<h1>{escape(_('Digests and alerts'))}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


async def preferences(request: Request, default_digest: str) -> Response:
    locale = locale_of(request)
    _ = compiled_translations(LOCALE_DIR, locale).gettext
    signed = await admin_signed_in(request)
    if signed is None:
        return RedirectResponse("/login?" + urlencode({"next": "/p/reports/preferences"}), status_code=303)
    user, csrf = signed
    raw = request.query_params.get("connection", "")
    connection = None
    if raw:
        if not raw.isdigit() or len(raw) > 10 or not await admin_may_view(request, int(raw)):
            return page(request, locale, f"<p>{escape(_('No such site.'))}</p>", status=404)
        connection = await Connection.get_or_none(id=int(raw))
        if connection is None:
            return page(request, locale, f"<p>{escape(_('No such site.'))}</p>", status=404)
    message = ""
    if request.method == "POST":
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf_token") or ""), csrf):
            return page(request, locale, f"<p>{escape(_('The form has expired; open the page again.'))}</p>", 403)
        digest = str(form.get("digest") or "")
        if digest not in DIGEST_CHOICES:
            return page(request, locale, f"<p>{escape(_('Choose how often to get the digest.'))}</p>", 422)
        chosen: dict[str, Any] = {"digest": digest, "alerts": form.get("alerts") == "on"}
        saved = dict((user.preferences or {}).get(PREFERENCE) or {})
        if connection is None:
            saved.update(chosen)
        else:
            saved["connections"] = {**(saved.get("connections") or {}), str(connection.id): chosen}
        user.preferences = {**(user.preferences or {}), PREFERENCE: saved}
        await user.save(update_fields=["preferences"])
        message = f"<p><strong>{escape(_('Saved.'))}</strong></p>"
    current = choices(user, connection.id if connection else None, default_digest)
    where = (
        _("For the site %(site)s") % {"site": connection.name or connection.domain}
        if connection
        else _("For all your sites (a site's own choice wins)")
    )
    options = "".join(
        f'<label><input type="radio" name="digest" value="{key}"{" checked" if current["digest"] == key else ""}> '
        f"{escape(_(DIGEST_LABELS[key]))}</label><br>"
        for key in DIGEST_CHOICES
    )
    body = (
        f"{message}<p>{escape(where)}</p>"
        f'<form method="post"><input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f"<fieldset><legend>{escape(_('Digest of calls'))}</legend>{options}</fieldset>"
        f'<p><label><input type="checkbox" name="alerts"{" checked" if current["alerts"] else ""}> '
        f"{escape(_('Alerts about problems (telephony, operator numbers, integrations)'))}</label></p>"
        f'<button type="submit">{escape(_("Save"))}</button></form>'
        f"<p>{escape(_('Digests and alerts go to the users with full access to a site.'))}</p>"
    )
    return page(request, locale, body)


def routes(default_digest: str) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await preferences(request, default_digest)

    return [Route("/preferences", endpoint, methods=["GET", "POST"])]
