"""The admin's route table: every page with the scope and level its grant check needs.

``tests/test_admin_access.py`` walks this table for every access level, so a
route added here without the right level fails the suite.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from perezvon.core.models import GrantLevel
from perezvon.web.admin.framework import AdminRoute, Ctx, page
from perezvon.web.admin.views import (
    auth,
    calls,
    dashboard,
    editor,
    exports,
    people,
    preferences,
    projects,
    redial,
    settings,
    staff,
)

VIEW, EDIT, FULL = GrantLevel.VIEW, GrantLevel.EDIT, GrantLevel.FULL


async def home(ctx: Ctx) -> Response:
    return ctx.redirect("/calls")


ADMIN_ROUTES: list[AdminRoute] = [
    AdminRoute("/login", auth.login, ("GET", "POST"), scope="public"),
    AdminRoute("/login/forgot", auth.forgot, ("GET", "POST"), scope="public"),
    AdminRoute("/logout", auth.logout, ("POST",), scope="public"),
    AdminRoute("/activate/{token}", auth.activate, ("GET", "POST"), scope="public"),
    AdminRoute("/lang/{code}", auth.language, ("GET",), scope="public"),
    AdminRoute("/", home),
    AdminRoute("/profile", auth.profile, ("GET", "POST")),
    AdminRoute("/calls", calls.calls_table),
    AdminRoute("/calls/export", exports.export_start, ("POST",)),
    # the user's own choice of columns: any signed-in user, for themselves only
    AdminRoute("/calls/columns", preferences.save_calls_columns, ("POST",)),
    AdminRoute("/exports/{export_id}", exports.export_page),
    AdminRoute("/exports/{export_id}/status", exports.export_status),
    AdminRoute("/exports/{export_id}/download", exports.export_download),
    AdminRoute("/calls/{call_id}", calls.call_detail, scope="call", level=VIEW),
    AdminRoute("/calls/{call_id}/recording", calls.call_recording, scope="call", level=VIEW),
    # the success e-mail's link: no sign-in, the signature and its expiry are the access (docs/recordings.md)
    AdminRoute("/recordings/{call_ref}/{expires}/{signature}", calls.signed_recording, scope="public"),
    AdminRoute("/calls/{call_id}/tags", calls.call_tags, ("POST",), scope="call", level=EDIT),
    AdminRoute("/calls/{call_id}/notes", calls.call_notes, ("POST",), scope="call", level=EDIT),
    AdminRoute("/calls/{call_id}/again", calls.call_again_now, ("POST",), scope="call", level=EDIT),
    # the view also checks that the user wrote the note or has full access to the connection
    AdminRoute("/calls/{call_id}/notes/{note_id}", calls.call_note, ("POST",), scope="call", level=EDIT),
    AdminRoute("/dashboard", dashboard.dashboard),
    AdminRoute("/projects", projects.projects_list),
    AdminRoute("/projects/{project_id}", projects.project_page, scope="project", level=VIEW, name="project_page"),
    AdminRoute(
        "/projects/{project_id}", projects.project_page, ("POST",), scope="project", level=FULL, name="project_save"
    ),
    AdminRoute("/projects/{project_id}/grants", projects.project_grants, ("POST",), scope="project", level=FULL),
    AdminRoute("/connections", projects.connections_list),
    AdminRoute("/connections/{connection_id}", projects.connection_page, scope="connection", level=VIEW),
    AdminRoute(
        "/connections/{connection_id}/users",
        people.connection_users,
        scope="connection",
        level=FULL,
        name="connection_users",
    ),
    AdminRoute(
        "/connections/{connection_id}/users",
        people.connection_users,
        ("POST",),
        scope="connection",
        level=FULL,
        name="connection_users_save",
    ),
    AdminRoute(
        "/connections/{connection_id}/settings/{tab}",
        settings.settings_tab,
        scope="connection",
        level=VIEW,
        name="settings_tab",
    ),
    AdminRoute(
        "/connections/{connection_id}/settings/{tab}",
        settings.settings_tab,
        ("POST",),
        scope="connection",
        level=EDIT,
        name="settings_tab_save",
    ),
    # saves nothing: a viewer may see what the rules on the page do
    AdminRoute(
        "/connections/{connection_id}/settings/telephony/preview",
        redial.preview_endpoint,
        ("POST",),
        scope="connection",
        level=VIEW,
        name="redial_preview",
    ),
    AdminRoute(
        "/connections/{connection_id}/{kind}/{key}/toggle",
        projects.plugin_toggle,
        ("POST",),
        scope="connection",
        level=FULL,
    ),
    AdminRoute(
        "/connections/{connection_id}/editor/{key}/preview",
        editor.preview,
        scope="connection",
        level=VIEW,
        name="app_editor_preview",
    ),
    AdminRoute(
        "/connections/{connection_id}/editor/{key}/draft",
        editor.draft,
        ("POST",),
        scope="connection",
        level=VIEW,
        name="app_editor_draft",
        checks_own_fields=True,
    ),
    # apps that declare an editor (Application.editor) get the visual editor; other plugins the generated form
    AdminRoute(
        "/connections/{connection_id}/{kind}/{key}",
        editor.plugin_settings,
        scope="connection",
        level=VIEW,
        name="plugin_settings",
    ),
    AdminRoute(
        "/connections/{connection_id}/{kind}/{key}",
        editor.plugin_settings,
        ("POST",),
        scope="connection",
        level=EDIT,
        name="plugin_settings_save",
        checks_own_fields=True,
    ),
    AdminRoute("/connections/{connection_id}/snippet", settings.download_snippet, scope="connection", level=VIEW),
    AdminRoute("/staff/users", staff.staff_users, ("GET", "POST"), scope="staff"),
    AdminRoute("/staff/projects", staff.staff_projects, ("GET", "POST"), scope="staff"),
    AdminRoute("/staff/connections", staff.staff_connections, ("GET", "POST"), scope="staff"),
    AdminRoute("/staff/grants", staff.staff_grants, ("GET", "POST"), scope="staff"),
]


def admin_routes(perezvon) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Mount("/admin-static", StaticFiles(packages=[("perezvon.web.admin", "static")]), name="admin-static")
    ]
    for route in ADMIN_ROUTES:
        routes.append(Route(route.path, page(route, perezvon), methods=list(route.methods), name=route.name))
    return routes
