"""The site script (docs/site-script.md): loader, per-connection config, content-hashed code.

What a visitor's browser fetches on every page view of a customer site:

* ``GET /inject?token=T`` -- a tiny loader (a few hundred bytes). It checks the
  page's host against the connection's domains, creates ``window.Perezvon``,
  starts fetching the config and the runtime in parallel, and does nothing
  at all for an unknown or switched-off connection.
* ``GET /site/config?token=T`` -- the connection's config as JSON: the apps
  switched on with their ``client_config``, working-hours windows, offices,
  departments, the session rules, integrations' client events. Cached by the
  browser for a minute and revalidated with an ETag (304) after that, so a
  page view costs at most one small request and usually none.
* ``GET /site/static/<name>.<hash>.js`` -- the runtime, each app's
  ``client_script`` and each integration's ``client_script``, named by the
  hash of their content and cached for a year (``immutable``).

The core knows no concrete app: it serves whatever the registered
applications and integrations point at.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from perezvon.core import enablement, page_gates
from perezvon.core.domains import browser_domains
from perezvon.core.models import CalendarDay, Connection, Department, Office
from perezvon.core.schedule import Hours
from perezvon.web.unavailable import unavailable

if TYPE_CHECKING:
    from perezvon.core.app import Perezvon

log = logging.getLogger("perezvon.site")

STATIC_DIR = Path(__file__).with_name("static") / "site"
#: hashed files never change under their name
IMMUTABLE = b"public, max-age=31536000, immutable"
#: the loader names the runtime's hash, so it is re-checked every few minutes
LOADER_CACHE = b"public, max-age=300"
#: the config: a page view within a minute costs no request; later ones a 304
CONFIG_MAX_AGE = 60
CONFIG_CACHE = f"public, max-age={CONFIG_MAX_AGE}".encode()
JS = b"application/javascript; charset=utf-8"
NO_SUCH_SITE = b'{"errors":{"token":["Unknown or switched-off site token."]}}'
#: working-hours windows sent to the browser: yesterday .. two weeks ahead
WINDOW_DAYS = range(-1, 15)
NOTHING_TO_DO = b"/* Perezvon: nothing to do for this token */\n"


@dataclasses.dataclass(frozen=True)
class Body:
    """Bytes served as they are or gzipped, with their ETag."""

    raw: bytes
    gz: bytes
    etag: str

    @classmethod
    def of(cls, raw: bytes) -> Body:
        return cls(raw, gzip.compress(raw, 9, mtime=0), '"' + hashlib.sha256(raw).hexdigest()[:20] + '"')

    @property
    def etag_bytes(self) -> bytes:
        return self.etag.encode()


@dataclasses.dataclass(frozen=True)
class Asset:
    name: str  # e.g. "runtime", "app-widget"
    digest: str
    body: Body

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.digest}.js"

    @property
    def path(self) -> str:
        return f"/site/static/{self.filename}"


def _asset(name: str, source: Path) -> Asset:
    raw = source.read_bytes()
    return Asset(name, hashlib.sha256(raw).hexdigest()[:12], Body.of(raw))


def _compact(script: str) -> str:
    """The loader without its comments and indentation: every site page fetches it, so its bytes
    count (loader.js keeps "/*" out of its strings and regular expressions for this)."""
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.DOTALL)
    return "\n".join(line.strip() for line in script.splitlines() if line.strip())


class SiteScript:
    """Builds and serves the loader, the config and the static code."""

    def __init__(self, perezvon: Perezvon) -> None:
        self.perezvon = perezvon
        self.registry = perezvon.host.registry
        self.public_url = perezvon.settings.public_url.rstrip("/")
        self.ttl = max(perezvon.settings.connection_cache_seconds, 0.0)
        self.assets: dict[str, Asset] = {}
        self._add(_asset("runtime", STATIC_DIR / "runtime.js"))
        self.app_assets: dict[str, Asset] = {}
        for key, app in self.registry.applications.items():
            if app.client_script is not None:
                self.app_assets[key] = self._add(_asset(f"app-{key}", Path(app.client_script)))
        self.integration_assets: dict[str, Asset] = {}
        for key, integration in self.registry.integrations.items():
            script = getattr(integration, "client_script", None)
            if script is not None:
                self.integration_assets[key] = self._add(_asset(f"int-{key}", Path(script)))
        self.loader_template = _compact((STATIC_DIR / "loader.js").read_text())
        # token -> (expires at, loader body | None, config body | None); None = nothing to do
        self._cache: dict[str, tuple[float, Body | None, Body | None]] = {}

    def _add(self, asset: Asset) -> Asset:
        self.assets[asset.name] = asset
        return asset

    # --- building --------------------------------------------------------------------

    async def _build(self, token: str) -> tuple[Body | None, Body | None]:
        connection = await Connection.get_or_none(token=token) if token else None
        if connection is None or not connection.is_on:
            return None, None
        config = await self.config_for(connection)
        boot: dict[str, Any] = {
            "t": connection.token,
            "b": self.public_url,
            "h": browser_domains(connection.domains()),
            "r": self.assets["runtime"].path,
            # the apps' code is fetched at once, in parallel with the config and the runtime ...
            "a": [app["script"] for app in config["apps"]],
        }
        # ... except on screens wider than an app can show on (script -> widest viewport)
        if widths := {app["script"]: app["max_width"] for app in config["apps"] if app.get("max_width")}:
            boot["w"] = widths
        # ... and on pages it cannot show on (script -> alternatives of URL conditions); the runtime
        # asks the loader again when a single-page site moves on, so the config need not carry them
        if gates := {app["script"]: pages for app in config["apps"] if (pages := app.pop("pages")) is not None}:
            boot["g"] = gates
        loader = self.loader_template.replace("__BOOT__", json.dumps(boot, separators=(",", ":"))).encode()
        return Body.of(loader), Body.of(json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode())

    async def config_for(self, connection: Connection, now: dt.datetime | None = None) -> dict[str, Any]:
        now = now or dt.datetime.now(dt.UTC)
        calendar = await CalendarDay.filter(connection_id=connection.id).all()
        hours = Hours(
            timezone=connection.timezone,
            weekly=connection.schedule,
            overrides={d.date: (None if d.kind == "holiday" else (d.opens, d.closes)) for d in calendar},
        )
        today = now.astimezone(hours.zone).date()
        windows = []
        for offset in WINDOW_DAYS:
            try:
                span = hours.window(today + dt.timedelta(days=offset))
            except Exception:  # a broken schedule: the apps show their working look
                span = None
            if span:
                windows.append([int(span[0].timestamp() * 1000), int(span[1].timestamp() * 1000)])
        offices = await Office.filter(connection_id=connection.id, is_active=True).all()
        departments = await Department.filter(connection_id=connection.id, is_active=True).all()
        apps = []
        # settings that no longer validate leave that one plugin out (logged once: core/enablement.py)
        for key, stored in await enablement.settings_on(connection, enablement.APPLICATION):
            app = self.registry.applications.get(key)
            if app is None or key not in self.app_assets:
                continue
            settings = enablement.usable_settings(app, enablement.APPLICATION, connection.id, stored)
            if settings is None:
                continue
            try:
                client = app.client_config(connection, settings)
                pages = page_gates.encoded(app.page_gate(settings))
            except Exception as exc:  # one broken app must not break the others
                log.error("connection %s: app %s settings unusable: %s", connection.id, app.key, exc)
                continue
            if pages == []:  # it can show on no page: nothing to fetch or start
                continue
            apps.append(
                {
                    "key": app.key,
                    "title": app.title,
                    "source": app.lead_source,
                    "script": self.app_assets[app.key].path,
                    "config": client,
                    "max_width": app.max_viewport_px,
                    "pages": pages,
                }
            )
        integrations: dict[str, Any] = {}
        integration_scripts = []
        for key, stored in await enablement.settings_on(connection, enablement.INTEGRATION):
            integration = self.registry.integrations.get(key)
            if integration is None:
                continue
            settings = enablement.usable_settings(integration, enablement.INTEGRATION, connection.id, stored)
            if settings is None:
                continue
            try:
                integrations[integration.key] = integration.client_events(settings)
            except Exception as exc:
                log.error("connection %s: integration %s settings unusable: %s", connection.id, integration.key, exc)
                continue
            if integration.key in self.integration_assets:
                integration_scripts.append(self.integration_assets[integration.key].path)
        return {
            "v": 1,
            "api": self.public_url,
            "site": {
                "name": connection.name,
                "timezone": connection.timezone,
                "timer_seconds": connection.timer_seconds,
                "session_minutes": connection.session_minutes,
                "session_gap_minutes": connection.session_gap_minutes,
                "convenient_time": connection.convenient_time,
            },
            "hours": {"windows": windows},
            "offices": {
                "enabled": connection.offices_enabled and bool(offices),
                "required": connection.offices_enabled and connection.offices_required,
                "title": connection.offices_title,
                "items": [
                    {
                        "id": o.id,
                        "name": o.name,
                        "phone_selector": o.phone_selector,
                        # for apps that show the way (a map link, a route)
                        "address": o.address,
                        "latitude": o.latitude,
                        "longitude": o.longitude,
                    }
                    for o in offices
                ],
            },
            "departments": {
                "enabled": connection.departments_enabled and bool(departments),
                "required": connection.departments_enabled and connection.departments_required,
                "title": connection.departments_title,
                "items": [{"id": d.id, "name": d.name} for d in departments],
            },
            "apps": apps,
            # the site events the apps on this page emit: analytics make a goal of each
            "events": list(self.registry.site_events(app["key"] for app in apps)) if apps else [],
            "integrations": integrations,
            "integration_scripts": integration_scripts,
        }

    async def bodies(self, token: str) -> tuple[Body | None, Body | None]:
        hit = self._cache.get(token)
        if hit and hit[0] > time.monotonic():
            return hit[1], hit[2]
        loader, config = await self._build(token)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[token] = (time.monotonic() + self.ttl, loader, config)
        return loader, config

    def forget(self, token: str) -> None:
        """Drop a connection's cached bodies (after its settings were saved)."""
        self._cache.pop(token, None)

    # --- serving ------------------------------------------------------------------------
    # Every page view of every customer site asks for these, so they are answered by a raw
    # ASGI handler in front of the router (SiteScriptFastPath): no Request, no routing.

    async def answer(self, scope: dict, send) -> bool:
        """Serve a site-script request; False when ``scope`` is not one."""
        path = scope["path"]
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        if path == "/site/config":
            _, config = await self.bodies(_token(scope))
            extra = [(b"access-control-allow-origin", b"*"), (b"timing-allow-origin", b"*")]
            if config is None:
                await _respond(
                    send, scope, 404, b"application/json", NO_SUCH_SITE, [(b"cache-control", b"no-store"), *extra]
                )
            else:
                await _send_body(scope, send, config, b"application/json", CONFIG_CACHE, extra)
            return True
        if path == "/inject":
            loader, _ = await self.bodies(_token(scope))
            if loader is None:
                await _respond(send, scope, 200, JS, NOTHING_TO_DO, [(b"cache-control", LOADER_CACHE)])
            else:
                await _send_body(scope, send, loader, JS, LOADER_CACHE)
            return True
        if path.startswith("/site/static/"):
            filename = path[len("/site/static/") :]
            name, _, rest = filename.partition(".")
            asset = self.assets.get(name)
            if asset is None or not rest.endswith(".js") or "/" in filename:
                await _respond(send, scope, 404, JS, b"/* not found */", [])
                return True
            # a page holding an old loader asks for an old hash: today's code, but not for a year
            cache = IMMUTABLE if filename == asset.filename else b"no-cache"
            await _send_body(
                scope,
                send,
                asset.body,
                JS,
                cache,
                [(b"access-control-allow-origin", b"*"), (b"timing-allow-origin", b"*")],
            )
            return True
        return False

    async def try_page(self, request: Request) -> Response:
        """A sample page carrying the snippet, to see the apps on a site at once (the demo uses it)."""
        token = request.query_params.get("token", "")
        html = (STATIC_DIR / "try.html").read_text()
        snippet = f'<script async src="{self.public_url}/inject?token={_attr(token)}"></script>'
        return HTMLResponse(html.replace("<!--SNIPPET-->", snippet), headers={"Cache-Control": "no-store"})

    def serve_before(self, app) -> None:
        """Answer the site script's paths in front of everything else ``app`` does:
        each page view of each customer site comes here, so no middleware, no routing."""
        build = app.build_middleware_stack
        app.build_middleware_stack = lambda: SiteScriptFastPath(build(), self)

    def routes(self) -> list[Route]:
        """The routes served through the router (the hot paths go through :meth:`answer`)."""
        return [Route("/site/try", self.try_page, methods=["GET"])]


class SiteScriptFastPath:
    """ASGI middleware: the loader, the config and the static code, before any routing."""

    def __init__(self, app, site_script: SiteScript) -> None:
        self.app = app
        self.site_script = site_script

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            try:
                answered = await self.site_script.answer(scope, send)
            except Exception as exc:  # a lost database or Redis: 503, as everywhere else (web/unavailable.py)
                await (await unavailable(Request(scope, receive), exc))(scope, receive, send)
                return
            if answered:
                return
        await self.app(scope, receive, send)


def _attr(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "-_")


def _token(scope: dict) -> str:
    """The ``token`` parameter; "" (no site) for one no site can have: over 64 characters, or with a NUL
    (PostgreSQL refuses it in a query: a 500 for a page view)."""
    query = scope.get("query_string", b"")
    if query.startswith(b"token=") and b"&" not in query and b"%" not in query and b"+" not in query:
        token = query[6:].decode("latin-1")  # what the loader sends: the common case, parsed cheaply
        return token if len(token) <= 64 else ""
    for key, value in parse_qsl(query.decode("latin-1")):
        if key == "token":
            return value if len(value) <= 64 and "\x00" not in value else ""
    return ""


def _header(scope: dict, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


async def _respond(
    send, scope: dict, status: int, media_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    head = [(b"content-type", media_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _send_body(
    scope: dict, send, body: Body, media_type: bytes, cache: bytes, headers: list[tuple[bytes, bytes]] = ()
) -> None:
    out = [(b"cache-control", cache), (b"etag", body.etag_bytes), (b"vary", b"Accept-Encoding"), *headers]
    if_none_match = _header(scope, b"if-none-match")
    if if_none_match and body.etag_bytes in [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]:
        await send({"type": "http.response.start", "status": 304, "headers": out})
        await send({"type": "http.response.body", "body": b""})
        return
    if b"gzip" in _header(scope, b"accept-encoding"):
        await _respond(send, scope, 200, media_type, body.gz, [(b"content-encoding", b"gzip"), *out])
    else:
        await _respond(send, scope, 200, media_type, body.raw, out)
