"""One gate for every admin page: session, login, grant level, CSRF, security headers.

Each route of the admin is an :class:`AdminRoute` that names the scope its
grant check applies to and the level it needs; :func:`page` wraps the
endpoint so no handler can forget a check. The route table is plain data, so
``tests/test_admin_access.py`` walks it for every access level.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from perezvon.core.access import Access, AccessDenied
from perezvon.core.models import Call, Connection, GrantLevel, Project, User
from perezvon.core.storable import MAX_DB_INT, bad_text
from perezvon.web.admin.i18n import environment, pick_locale, plugin_template_packages, translate
from perezvon.web.admin.sessions import SESSION_COOKIE, SESSION_SECONDS, Session, SessionStore, csrf_ok

log = logging.getLogger("perezvon.admin")

#: scopes of the grant check; the path parameter each one reads
SCOPES = {
    "public": None,
    "user": None,
    "staff": None,
    "project": "project_id",
    "connection": "connection_id",
    "call": "call_id",
}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclasses.dataclass
class AdminRoute:
    path: str
    endpoint: Callable[[Ctx], Awaitable[Response]]
    methods: tuple[str, ...] = ("GET",)
    scope: str = "user"
    level: str = GrantLevel.VIEW
    name: str = ""
    #: the handler refuses what no store can hold on the form's own fields (plugin settings go through
    #: core.enablement.validated), so the gate's catch-all, one message for the whole form, leaves the
    #: form to it; the query is still checked here
    checks_own_fields: bool = False

    def __post_init__(self) -> None:
        assert self.scope in SCOPES, self.scope
        if not self.name:
            self.name = self.endpoint.__name__


class Ctx:
    """What a handler gets: the request and everything the gate already found out."""

    def __init__(self, request: Request, perezvon, session: Session | None, locale: str) -> None:
        self.request = request
        self.perezvon = perezvon
        self.session = session
        self.locale = locale
        self.user: User | None = None
        self.access: Access | None = None
        self.form: FormData | None = None
        self.project: Project | None = None
        self.connection: Connection | None = None
        self.call: Call | None = None
        self.session_dirty = False
        self.store = SessionStore(perezvon.redis)

    # --- helpers for handlers -------------------------------------------------------------

    def _(self, message: str, **values: Any) -> str:
        return translate(message, self.locale, **values)

    @property
    def csrf_token(self) -> str:
        return self.session.csrf if self.session else ""

    async def ensure_session(self) -> Session:
        """An anonymous session, so a form shown before login still carries a CSRF token."""
        if self.session is None or self.session.deleted:
            self.session = await self.store.create()
        return self.session

    def flash(self, message: str, kind: str = "ok") -> None:
        if self.session is not None:
            self.session.data.setdefault("flash", []).append([kind, message])
            self.session_dirty = True

    def can_connection(self, connection_id: int, level: str = GrantLevel.VIEW) -> bool:
        return bool(self.access) and self.access.can_connection(connection_id, level)

    def can_project(self, project_id: int, level: str = GrantLevel.VIEW) -> bool:
        return bool(self.access) and self.access.can_project(project_id, level)

    async def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        flashes = []
        if self.session is not None and self.session.data.get("flash"):
            flashes = self.session.data.pop("flash")
            self.session_dirty = True
        manager = None
        if self.access is not None and not self.access.is_staff:
            projects = self.access.visible_project_ids()
            if projects:
                manager = await Project.filter(id__in=projects).order_by("id").first()
        html = (
            environment(self.locale, plugin_template_packages(self.perezvon.host))
            .get_template(template)
            .render(
                ctx=self,
                user=self.user,
                access=self.access,
                csrf_token=self.csrf_token,
                flashes=flashes,
                manager=manager,
                path=self.request.url.path,
                query=self.request.url.query,
                **values,
            )
        )
        return HTMLResponse(html, status_code=status_code)

    def redirect(self, url: str, status_code: int = 303) -> RedirectResponse:
        return RedirectResponse(url, status_code=status_code)

    async def error(self, status_code: int, message: str) -> HTMLResponse:
        return await self.render(
            "admin/error.html", status_code=status_code, status=status_code, message=self._(message)
        )


def safe_next(target: str | None) -> str:
    """Only a local path may follow a login: ``//evil``, ``https://evil`` and ``/\\evil`` all go home."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return "/"
    return target


def secure_cookies(request: Request, perezvon) -> bool:
    return request.url.scheme == "https" or perezvon.settings.public_url.startswith("https://")


def set_session_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, session.id, max_age=SESSION_SECONDS, path="/", httponly=True, secure=secure, samesite="lax"
    )


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _check(ctx: Ctx, route: AdminRoute) -> Response | None:
    """None when the user may go on; else the response that stops them."""
    params = ctx.request.path_params
    access = ctx.access
    if route.scope == "staff":
        access.require_staff()
    elif route.scope == "project":
        project = await Project.get_or_none(id=_int(params["project_id"]))
        if project is None or not access.can_project(project.id):
            return await ctx.error(404, "There is no such page.")
        access.require_project(project.id, route.level)
        ctx.project = project
    elif route.scope == "connection":
        connection = await Connection.get_or_none(id=_int(params["connection_id"]))
        if connection is None or not access.can_connection(connection.id):
            return await ctx.error(404, "There is no such page.")
        access.require_connection(connection.id, route.level)
        ctx.connection = connection
    elif route.scope == "call":
        try:
            call_id = uuid.UUID(params["call_id"])
        except ValueError:
            return await ctx.error(404, "There is no such page.")
        call = await Call.get_or_none(id=call_id)
        if call is None or not access.can_connection(call.connection_id):
            return await ctx.error(404, "There is no such page.")
        access.require_connection(call.connection_id, route.level)
        ctx.call = call
    return None


def _int(value: str) -> int:
    """A path's id, or -1 (no such row) for anything the database's integer cannot hold."""
    if not (value.isascii() and value.isdigit() and len(value) <= 10) or int(value) > MAX_DB_INT:
        return -1
    return int(value)


def unstorable_input(items: list[tuple[str, Any]]) -> str | None:
    """The first form or query field no store can hold: a NUL or a broken character anywhere, or an id
    (a field named ``id`` or ``*_id``) in digits the database's integer cannot hold. Checked once here,
    for every admin form and filter, so no handler turns it into a database error (a 500)."""
    for name, value in items:
        if not isinstance(value, str):
            continue  # an uploaded file: its handler reads and checks it
        if bad_text(name) or bad_text(value):
            return name
        if (name == "id" or name.endswith("_id")) and value.isdigit() and _int(value) == -1:
            return name
    return None


def page(route: AdminRoute, perezvon) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        store = SessionStore(perezvon.redis)
        session = await store.load(request.cookies.get(SESSION_COOKIE))
        ctx = Ctx(request, perezvon, session, pick_locale(request))
        response = await _gate_and_run(ctx, route)
        if ctx.session is not None and not ctx.session.deleted:
            if ctx.session_dirty:
                await store.save(ctx.session)
            if ctx.session.new:
                set_session_cookie(response, ctx.session, secure_cookies(request, perezvon))
        elif request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return add_security_headers(response)

    handler.__name__ = route.name
    return handler


async def _gate_and_run(ctx: Ctx, route: AdminRoute) -> Response:
    request = ctx.request
    if request.method == "POST":
        ctx.form = await request.form(max_part_size=10 * 1024 * 1024)
        if not csrf_ok(ctx.session, ctx.form.get("csrf_token") or request.headers.get("x-csrf-token")):
            return await ctx.error(403, "The form has expired. Reload the page and try again.")
    form_items = list(ctx.form.multi_items()) if ctx.form and not route.checks_own_fields else []
    if unstorable_input(list(request.query_params.multi_items()) + form_items):
        return await ctx.error(
            422, "The form has a value that cannot be stored: a NUL, a broken character or too large a number."
        )
    if route.scope != "public":
        user = None
        if ctx.session is not None and ctx.session.user_id:
            user = await User.get_or_none(id=ctx.session.user_id, is_active=True)
        if user is None:
            if request.method == "GET":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return ctx.redirect("/login?" + urlencode({"next": target}))
            return await ctx.error(401, "Please sign in again.")
        ctx.user = user
        ctx.access = await Access.for_user(user)
        try:
            stopped = await _check(ctx, route)
        except AccessDenied:
            return await ctx.error(403, "You do not have access to this.")
        if stopped is not None:
            return stopped
    return await route.endpoint(ctx)


async def signed_in(request: Request) -> tuple[User, str] | None:
    """The signed-in, active admin user and the session's CSRF token, or None
    (``perezvon.api.admin_signed_in``, for a plugin's own page of a user's choices)."""
    perezvon = request.app.state.perezvon
    session = await SessionStore(perezvon.redis).load(request.cookies.get(SESSION_COOKIE))
    if session is None or session.deleted or not session.user_id:
        return None
    user = await User.get_or_none(id=session.user_id, is_active=True)
    return None if user is None else (user, session.csrf)


async def may_view_connection(request: Request, connection_id: int) -> bool:
    """A signed-in, active admin user whose access includes viewing this connection
    (``perezvon.api.admin_may_view``, for plugin routes outside the admin's gate)."""
    perezvon = request.app.state.perezvon
    session = await SessionStore(perezvon.redis).load(request.cookies.get(SESSION_COOKIE))
    if session is None or session.deleted or not session.user_id:
        return False
    user = await User.get_or_none(id=session.user_id, is_active=True)
    if user is None:
        return False
    return (await Access.for_user(user)).can_connection(connection_id, GrantLevel.VIEW)
