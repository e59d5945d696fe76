"""The site script (SPEC S4.1): loader, per-connection config, content-hashed code.

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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.models import AppEnablement, CalendarDay, Connection, Department, IntegrationEnablement, Office
from core.schedule import Hours

if TYPE_CHECKING:
    from core.app import Perezvon

log = logging.getLogger("perezvon.site")

STATIC_DIR = Path(__file__).with_name("static") / "site"
#: hashed files never change under their name
IMMUTABLE = "public, max-age=31536000, immutable"
#: the loader names the runtime's hash, so it is re-checked every few minutes
LOADER_CACHE = "public, max-age=300"
#: the config: a page view within a minute costs no request; later ones a 304
CONFIG_MAX_AGE = 60
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


def host_allowed(host: str, domains: list[str]) -> bool:
    host = host.lower()
    return any(host == d or host.endswith("." + d) for d in domains)


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
        self.loader_template = (STATIC_DIR / "loader.js").read_text()
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
        loader = (self.loader_template
                  .replace("__BOOT__", json.dumps({
                      "t": connection.token, "b": self.public_url, "h": [d.lower() for d in connection.domains()],
                      "r": self.assets["runtime"].path}, separators=(",", ":")))).encode()
        return Body.of(loader), Body.of(json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode())

    async def config_for(self, connection: Connection, now: dt.datetime | None = None) -> dict[str, Any]:
        now = now or dt.datetime.now(dt.UTC)
        calendar = await CalendarDay.filter(connection_id=connection.id).all()
        hours = Hours(timezone=connection.timezone, weekly=connection.schedule,
                      overrides={d.date: (None if d.kind == "holiday" else (d.opens, d.closes)) for d in calendar})
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
        for enablement in await AppEnablement.filter(connection_id=connection.id, is_on=True).order_by("id"):
            app = self.registry.applications.get(enablement.app_key)
            if app is None or enablement.app_key not in self.app_assets:
                continue
            try:
                settings = app.settings_schema().load(enablement.settings or {})
                client = app.client_config(connection, settings)
            except (ValidationError, Exception) as exc:  # one broken app must not break the others
                log.error("connection %s: app %s settings unusable: %s", connection.id, app.key, exc)
                continue
            apps.append({"key": app.key, "title": app.title, "source": app.lead_source,
                         "script": self.app_assets[app.key].path, "config": client})
        integrations: dict[str, Any] = {}
        integration_scripts = []
        for enablement in await IntegrationEnablement.filter(connection_id=connection.id, is_on=True).order_by("id"):
            integration = self.registry.integrations.get(enablement.integration_key)
            if integration is None:
                continue
            try:
                settings = integration.settings_schema().load(enablement.settings or {})
                integrations[integration.key] = integration.client_events(settings)
            except (ValidationError, Exception) as exc:
                log.error("connection %s: integration %s settings unusable: %s", connection.id, integration.key, exc)
                continue
            if integration.key in self.integration_assets:
                integration_scripts.append(self.integration_assets[integration.key].path)
        return {
            "v": 1,
            "api": self.public_url,
            "site": {"name": connection.name, "timezone": connection.timezone,
                     "timer_seconds": connection.timer_seconds, "session_minutes": connection.session_minutes,
                     "session_gap_minutes": connection.session_gap_minutes,
                     "convenient_time": connection.convenient_time},
            "hours": {"windows": windows},
            "offices": {"enabled": connection.offices_enabled and bool(offices),
                        "required": connection.offices_enabled and connection.offices_required,
                        "title": connection.offices_title,
                        "items": [{"id": o.id, "name": o.name, "phone_selector": o.phone_selector} for o in offices]},
            "departments": {"enabled": connection.departments_enabled and bool(departments),
                            "required": connection.departments_enabled and connection.departments_required,
                            "title": connection.departments_title,
                            "items": [{"id": d.id, "name": d.name} for d in departments]},
            "apps": apps,
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

    async def inject(self, request: Request) -> Response:
        loader, _ = await self.bodies(request.query_params.get("token", ""))
        if loader is None:
            return Response(NOTHING_TO_DO, media_type="application/javascript",
                            headers={"Cache-Control": LOADER_CACHE})
        return _send(request, loader, "application/javascript; charset=utf-8", LOADER_CACHE)

    async def config(self, request: Request) -> Response:
        _, config = await self.bodies(request.query_params.get("token", ""))
        # Timing-Allow-Origin: a site's own speed tools (and our tests) may see cache hits
        headers = {"Access-Control-Allow-Origin": "*", "Timing-Allow-Origin": "*"}
        if config is None:
            return Response(b'{"errors":{"token":["Unknown or switched-off site token."]}}', status_code=404,
                            media_type="application/json", headers={**headers, "Cache-Control": "no-store"})
        return _send(request, config, "application/json", f"public, max-age={CONFIG_MAX_AGE}", headers)

    async def static(self, request: Request) -> Response:
        filename = request.path_params["filename"]
        name, _, rest = filename.partition(".")
        asset = self.assets.get(name)
        if asset is None or not rest.endswith(".js"):
            return Response(b"/* not found */", status_code=404, media_type="application/javascript")
        # a page holding an old loader asks for an old hash: give today's code, but do not let it stick
        cache = IMMUTABLE if filename == asset.filename else "no-cache"
        return _send(request, asset.body, "application/javascript; charset=utf-8", cache,
                     {"Access-Control-Allow-Origin": "*", "Timing-Allow-Origin": "*"})

    async def try_page(self, request: Request) -> Response:
        """A sample page carrying the snippet, to see the apps on a site at once (the demo uses it)."""
        token = request.query_params.get("token", "")
        html = (STATIC_DIR / "try.html").read_text()
        snippet = f'<script async src="{self.public_url}/inject?token={_attr(token)}"></script>'
        return HTMLResponse(html.replace("<!--SNIPPET-->", snippet), headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [
            Route("/inject", self.inject, methods=["GET", "HEAD"]),
            Route("/site/config", self.config, methods=["GET", "HEAD"]),
            Route("/site/static/{filename}", self.static, methods=["GET", "HEAD"]),
            Route("/site/try", self.try_page, methods=["GET"]),
        ]


def _attr(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "-_")


def _send(request: Request, body: Body, media_type: str, cache: str,
          headers: dict[str, str] | None = None) -> Response:
    out = {"Cache-Control": cache, "ETag": body.etag, "Vary": "Accept-Encoding", **(headers or {})}
    if_none_match = request.headers.get("if-none-match", "")
    if if_none_match and body.etag in [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers=out)
    if "gzip" in request.headers.get("accept-encoding", ""):
        out["Content-Encoding"] = "gzip"
        return Response(body.gz, media_type=media_type, headers=out)
    return Response(body.raw, media_type=media_type, headers=out)
