"""The Starlette app: public API, plugin routes and pages."""

from __future__ import annotations

import contextlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route

from perezvon.core import version
from perezvon.core.app import Perezvon
from perezvon.core.i18n import gettext, negotiate
from perezvon.core.outages import OUTAGE_ERRORS
from perezvon.web.admin.routes import admin_routes
from perezvon.web.api.calls import get_call, list_calls, redial_call
from perezvon.web.api.health import healthz
from perezvon.web.api.leads import call_state, create_lead, preflight
from perezvon.web.openapi import build_spec
from perezvon.web.plugin_files import PLUGIN_STATIC, PluginStaticFiles
from perezvon.web.site import SiteScript
from perezvon.web.unavailable import unavailable

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,  # the templates ship with the package: no stat() of each file at every page
)


async def index(request: Request) -> HTMLResponse:
    locale = negotiate(request.headers.get("accept-language"))
    html = TEMPLATES.get_template("index.html").render(locale=locale, _=lambda message: gettext(message, locale))
    return HTMLResponse(html)


class SecurityHeaders:
    """ASGI middleware, outermost (the site script's fast path included): every response says
    ``X-Content-Type-Options: nosniff`` (a JSON answer is never run as a script or shown as a page), and,
    when ``PEREZVON_HSTS_SECONDS`` is set and the request came over https (or the public URL is https),
    ``Strict-Transport-Security``. Headers a response sets itself are kept."""

    def __init__(self, app, *, hsts_seconds: int, public_https: bool) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}".encode() if hsts_seconds > 0 else None
        self.public_https = public_https

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts if self.hsts and (self.public_https or scope.get("scheme") == "https") else None

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if hsts is not None and b"strict-transport-security" not in names:
                    headers.append((b"strict-transport-security", hsts))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(perezvon: Perezvon, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. With ``manage_lifecycle`` it starts and stops ``perezvon``
    itself (``perezvon web``); ``perezvon serve`` starts it once for all parts."""
    spec = build_spec(version(), perezvon.settings.public_url)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    routes = [
        Route("/api/v1/leads", create_lead, methods=["POST"]),
        Route("/api/v1/leads", preflight, methods=["OPTIONS"]),
        Route("/api/v1/calls/{call_id}/state", call_state, methods=["GET"]),
        Route("/api/v1/calls/{call_id}/state", preflight, methods=["OPTIONS"]),
        Route("/healthz", healthz),
        Route("/openapi.json", openapi),
        Route("/api/v1/calls", list_calls, methods=["GET"]),
        Route("/api/v1/calls/{call_id}", get_call, methods=["GET"]),
        Route("/api/v1/calls/{call_id}/redial", redial_call, methods=["POST"]),
        *admin_routes(perezvon),  # "/" is the admin (login required)
    ]
    # /inject, /site/config, /site/static (docs/site-script.md): answered before routing, see web/site.py
    site_script = SiteScript(perezvon)
    routes += site_script.routes()
    # each enabled plugin's static/ folder, by convention (the admin editors' scripts, ...)
    for plugin, (package, _) in perezvon.host.plugin_folders("static").items():
        routes.append(
            Mount(
                f"{PLUGIN_STATIC}/{plugin}/static",
                PluginStaticFiles(packages=[(package, "static")]),
                name=f"plugin-static-{plugin}",
            )
        )
    for plugin, plugin_routes in perezvon.host.routes():
        if plugin_routes:
            routes.append(Mount(f"/p/{plugin}", routes=plugin_routes, name=f"plugin-{plugin}"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_lifecycle:
            await perezvon.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await perezvon.stop()

    # OSError stands for refused or reset sockets; ``unavailable`` re-raises any other error (a 500)
    outage_handlers = dict.fromkeys((*OUTAGE_ERRORS, OSError), unavailable)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=outage_handlers)
    site_script.serve_before(app)
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(
        build(),
        hsts_seconds=perezvon.settings.hsts_seconds,
        public_https=perezvon.settings.public_url.startswith("https://"),
    )
    app.state.perezvon = perezvon
    app.state.site_script = site_script
    return app
