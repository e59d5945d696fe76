"""Projects and connections (docs/admin.md#pages): lists, pages, and the app/integration cards.

The cards come from the plugin registry: every registered application and
integration appears with its on/off switch and a settings form generated
from its ``settings_schema`` -- a newly installed plugin shows up here with
no change to the admin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from starlette.responses import Response
from tortoise.functions import Count

from perezvon.core import enablement
from perezvon.core.checks import can_check, check_settings
from perezvon.core.i18n import DEFAULT_LOCALE
from perezvon.core.models import AccessGrant, Call, Connection, GrantLevel, Project
from perezvon.core.recordings import GB, human_size
from perezvon.core.registry import CORE_SITE_EVENTS
from perezvon.web.admin.forms import field_views, flat_errors, form_values, load_form, merge_errors
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import plugin_text, translate

log = logging.getLogger("perezvon.admin")

DAYS = 7
ZONE = ZoneInfo("Europe/Moscow")


async def calls_per_day(connection_ids: list[int], days: int = DAYS) -> tuple[list[dt.date], dict[int, list[int]]]:
    """Calls per connection for each of the last ``days`` days (Moscow days), today last."""
    today = dt.datetime.now(ZONE).date()
    dates = [today - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    counts = {cid: [0] * days for cid in connection_ids}
    if not connection_ids:
        return dates, counts
    for index, day in enumerate(dates):
        start = dt.datetime.combine(day, dt.time.min, ZONE)
        rows = (
            await Call.filter(
                connection_id__in=connection_ids, created_at__gte=start, created_at__lt=start + dt.timedelta(days=1)
            )
            .annotate(n=Count("id"))
            .group_by("connection_id")
            .values("connection_id", "n")
        )
        for row in rows:
            counts[row["connection_id"]][index] = row["n"]
    return dates, counts


async def projects_list(ctx: Ctx) -> Response:
    ids = ctx.access.visible_project_ids()
    projects = await (Project.all() if ids is None else Project.filter(id__in=ids)).order_by("name")
    visible = ctx.access.visible_connection_ids()
    connections = await (Connection.all() if visible is None else Connection.filter(id__in=visible)).order_by(
        "name", "domain"
    )
    dates, counts = await calls_per_day([c.id for c in connections])
    by_project: dict[int, list[Connection]] = {}
    for connection in connections:
        by_project.setdefault(connection.project_id, []).append(connection)
    return await ctx.render(
        "admin/projects.html",
        projects=projects,
        by_project=by_project,
        dates=dates,
        counts=counts,
        peak=max([max(v) for v in counts.values()] + [1]),
    )


PROJECT_FIELDS = (
    "name",
    "legal_entity",
    "payment_type",
    "industry",
    "line_of_business",
    "city",
    "manager_name",
    "manager_phone",
    "manager_email",
    "recording_quota_gb",
    "recording_policy",
)


async def project_page(ctx: Ctx) -> Response:
    project = ctx.project
    errors: dict[str, list[str]] = {}
    if ctx.request.method == "POST":
        from perezvon.web.admin.views.staff import ProjectSchema

        loaded, _, errors = load_form(ProjectSchema(), ctx.form, {})
        if loaded is not None:
            await Project.filter(id=project.id).update(**loaded)
            ctx.flash(ctx._("Saved."))
            return ctx.redirect(f"/projects/{project.id}")
    visible = ctx.access.visible_connection_ids()
    query = Connection.filter(project_id=project.id)
    if visible is not None:
        query = query.filter(id__in=visible)
    connections = await query.order_by("name", "domain")
    apps_on = await enablement.keys_on_many([c.id for c in connections], enablement.APPLICATION)
    grants = (
        await AccessGrant.filter(project_id=project.id).prefetch_related("user")
        if ctx.can_project(project.id, GrantLevel.FULL)
        else []
    )
    connection_grants = (
        await AccessGrant.filter(connection__project_id=project.id).prefetch_related("user", "connection")
        if ctx.can_project(project.id, GrantLevel.FULL)
        else []
    )
    from perezvon.web.admin.views.staff import ProjectSchema

    return await ctx.render(
        "admin/project.html",
        project=project,
        connections=connections,
        apps_on=apps_on,
        app_titles=app_titles(ctx),
        grants=grants,
        connection_grants=connection_grants,
        fields=field_views(
            ProjectSchema(),
            dict(ctx.form) if errors else {f: getattr(project, f) for f in PROJECT_FIELDS},
            errors,
            ctx.locale,
        ),
        can_edit=ctx.can_project(project.id, GrantLevel.FULL),
        recording_use=human_size(project.recording_bytes),
        recording_limit=human_size(project.recording_quota_gb * GB) if project.recording_quota_gb else "",
        status_code=400 if errors else 200,
    )


async def connections_list(ctx: Ctx) -> Response:
    visible = ctx.access.visible_connection_ids()
    connections = (
        await (Connection.all() if visible is None else Connection.filter(id__in=visible))
        .prefetch_related("project")
        .order_by("name", "domain")
    )
    _dates, counts = await calls_per_day([c.id for c in connections], 1)
    apps_on = await enablement.keys_on_many([c.id for c in connections], enablement.APPLICATION)
    return await ctx.render(
        "admin/connections.html", connections=connections, today=counts, apps_on=apps_on, app_titles=app_titles(ctx)
    )


def app_titles(ctx: Ctx) -> dict[str, str]:
    """Each app's title in the user's language, by the app's key (the lists show names, not keys)."""
    return {
        key: plugin_text(app, ctx.locale)(app.title) for key, app in ctx.perezvon.host.registry.applications.items()
    }


# --- the connection page: cards ----------------------------------------------------------------

#: the URL's plugin kind -> (the enablement kind, the registry's dict of such plugins)
KINDS = {"apps": (enablement.APPLICATION, "applications"), "integrations": (enablement.INTEGRATION, "integrations")}


def _plugins(ctx: Ctx, kind: str) -> dict[str, Any]:
    return getattr(ctx.perezvon.host.registry, KINDS[kind][1])


def _plugin_of_path(ctx: Ctx) -> tuple[str, str, Any] | None:
    """(the URL's kind, the enablement kind, the plugin) named by the path, or None."""
    kind, key = ctx.request.path_params["kind"], ctx.request.path_params["key"]
    if kind not in KINDS or key not in _plugins(ctx, kind):
        return None
    return kind, KINDS[kind][0], _plugins(ctx, kind)[key]


async def connection_page(ctx: Ctx) -> Response:
    connection = ctx.connection
    set_up = await enablement.enablements_of(connection)
    cards: dict[str, list[dict[str, Any]]] = {}
    for kind, (plugin_kind, _) in KINDS.items():
        cards[kind] = [
            {
                "key": key,
                "title": plugin_text(plugin, ctx.locale)(plugin.title),
                # the card's short line; the whole description is on the plugin's settings page
                "description": plugin_text(plugin, ctx.locale)(
                    getattr(plugin, "summary", "") or getattr(plugin, "description", "")
                ),
                "on": bool((plugin_kind, key) in set_up and set_up[plugin_kind, key].is_on),
                "configured": (plugin_kind, key) in set_up,
            }
            for key, plugin in sorted(_plugins(ctx, kind).items(), key=lambda item: item[1].title)
        ]
    dates, counts = await calls_per_day([connection.id])
    project = await Project.get(id=connection.project_id)
    return await ctx.render(
        "admin/connection.html",
        connection=connection,
        project=project,
        cards=cards,
        panels=await admin_panels(ctx, connection),
        dates=dates,
        counts=counts[connection.id],
        peak=max(counts[connection.id] + [1]),
        can_full=ctx.can_connection(connection.id, GrantLevel.FULL),
        can_edit=ctx.can_connection(connection.id, GrantLevel.EDIT),
    )


async def admin_panels(ctx: Ctx, connection: Connection) -> list[dict[str, Any]]:
    """The apps' own panels (``Application.admin_panel``), each with its template, data and texts.

    A panel that fails to gather its data is left out (and logged): one plugin's bug must not
    cost the admin the connection's page.
    """
    panels = []
    for key, app in sorted(ctx.perezvon.host.registry.applications.items(), key=lambda item: item[1].title):
        if app.admin_panel is None:
            continue
        try:
            data = await app.admin_panel_data(connection, ctx.locale)
        except Exception:
            log.exception("the admin panel of %s failed for connection %s", key, connection.id)
            continue
        if ctx.access is not None and not ctx.access.sees_contacts(connection.id):
            from perezvon.core.masking import mask_value

            data = {k: mask_value(v) if k in app.admin_panel.contact_keys else v for k, v in data.items()}
        owner = ctx.perezvon.host.registry.owner[("application", key)]
        panels.append(
            {
                "key": key,
                "template": f"{owner}/{app.admin_panel.template}",
                "data": data,
                "t": plugin_text(app, ctx.locale),
                "action_url": f"/connections/{connection.id}/apps/{key}",
                "can_edit": ctx.can_connection(connection.id, GrantLevel.EDIT),
            }
        )
    return panels


async def panel_action(ctx: Ctx, plugin: Any, action: str) -> Response:
    """A button of an app's panel: the app runs it, the admin is told the result on the connection's page."""
    for kind, message in await plugin.admin_panel_action(ctx.connection, action, dict(ctx.form), ctx.locale):
        ctx.flash(message, "error" if kind == "error" else "ok")
    return ctx.redirect(f"/connections/{ctx.connection.id}")


async def plugin_toggle(ctx: Ctx) -> Response:
    found = _plugin_of_path(ctx)
    if found is None:
        return await ctx.error(404, "There is no such page.")
    kind, plugin_kind, plugin = found
    turn_on = ctx.form.get("on") == "1"
    if turn_on:
        if await enablement.stored_settings(ctx.connection, plugin_kind, plugin.key) is None:
            defaults = enablement.default_settings(plugin)
            if defaults is None:  # settings with required fields: switch on after they are filled in
                ctx.flash(ctx._("Fill in the settings first."), "error")
                return ctx.redirect(f"/connections/{ctx.connection.id}/{kind}/{plugin.key}")
            await enablement.enable(ctx.connection, plugin_kind, plugin.key, defaults)
        else:
            await enablement.enable(ctx.connection, plugin_kind, plugin.key)
    else:
        await enablement.switch(ctx.connection, plugin_kind, plugin.key, False)
    title = plugin_text(plugin, ctx.locale)(plugin.title)
    ctx.flash(ctx._("%(title)s is on.", title=title) if turn_on else ctx._("%(title)s is off.", title=title))
    return ctx.redirect(f"/connections/{ctx.connection.id}")


async def save_plugin_settings(
    connection: Connection,
    plugin_kind: str,
    plugin: Any,
    form: Any,
    *,
    locale: str = DEFAULT_LOCALE,
    store: bool = True,
) -> PluginForm:
    """The save path of a plugin card: load the stored settings, merge the form's secrets into them,
    validate, ask the plugin's service (its ``check``, when it has one), store.

    A refusal of the service that names a field stops the save like a schema error does. A
    service that cannot be asked now (unreachable, timing out: errors about no one field) does
    not: the valid settings are stored and the admin is warned, so nothing typed is lost to
    another system's outage. With ``store=False`` ("Check connection") nothing is stored.
    """
    schema = enablement.schema_instance(plugin.settings_schema)
    stored = await enablement.stored_settings(connection, plugin_kind, plugin.key) or {}
    submitted, errors = form_values(schema, form)
    submitted = enablement.merge_secrets(schema, submitted, stored)
    try:
        loaded = enablement.validated(plugin, submitted)
    except ValidationError as exc:
        return PluginForm(None, submitted, merge_errors(flat_errors(exc.messages), errors))
    if errors:
        return PluginForm(None, submitted, errors)
    checked = can_check(plugin)
    refused = await check_settings(plugin, loaded, locale=locale) if checked else {}
    warnings = refused.pop("_schema", [])
    if refused:
        return PluginForm(None, submitted, {**refused, "_schema": warnings} if warnings else refused, checked=True)
    if store:
        await enablement.store_settings(connection, plugin_kind, plugin.key, loaded)
    return PluginForm(loaded, submitted, {}, checked=checked, warnings=warnings)


@dataclasses.dataclass
class PluginForm:
    """What became of a plugin card's form: the settings (None when refused), what was sent, why."""

    loaded: dict[str, Any] | None
    submitted: dict[str, Any]
    errors: dict[str, list[str]]
    checked: bool = False  # the plugin's service was asked
    warnings: list[str] = dataclasses.field(default_factory=list)  # the service could not be asked


async def plugin_settings(ctx: Ctx) -> Response:
    found = _plugin_of_path(ctx)
    if found is None:
        return await ctx.error(404, "There is no such page.")
    kind, plugin_kind, plugin = found
    schema = enablement.schema_instance(plugin.settings_schema)
    row = await enablement.enablement(ctx.connection, plugin_kind, plugin.key)
    notices: list[str] = []
    status_code = 200
    if ctx.request.method == "POST":
        if not ctx.can_connection(ctx.connection.id, GrantLevel.EDIT):
            return await ctx.error(403, "You do not have access to this.")
        panel = getattr(plugin, "admin_panel", None)
        if panel is not None and ctx.form.get("action") in panel.actions:
            return await panel_action(ctx, plugin, ctx.form["action"])
        only_check = ctx.form.get("action") == "check"
        result = await save_plugin_settings(
            ctx.connection, plugin_kind, plugin, ctx.form, locale=ctx.locale, store=not only_check
        )
        errors = result.errors
        if result.loaded is not None and not only_check:
            ctx.flash(ctx._("Saved."))
            for warning in result.warnings:
                ctx.flash(ctx._("The service could not check the settings: %(reason)s") % {"reason": warning}, "error")
            return ctx.redirect(f"/connections/{ctx.connection.id}/{kind}/{plugin.key}")
        if result.loaded is not None:  # "Check connection": nothing stored, the verdict shown on the form
            if result.warnings:
                errors = {"_schema": result.warnings}
            else:
                notices.append(ctx._("The service accepted these settings."))
        else:
            status_code = 400
        values = enablement.mask_secrets(schema, result.submitted)
    elif row is None:
        values, errors = enablement.mask_secrets(schema, enablement.default_settings(plugin) or {}), {}
    else:  # stored settings that no longer validate are shown as stored, with their errors
        values, messages = enablement.settings_for_display(plugin, row.settings)
        errors = flat_errors(messages)
    text = plugin_text(plugin, ctx.locale)
    return await ctx.render(
        "admin/plugin_settings.html",
        status_code=status_code,
        kind=kind,
        key=plugin.key,
        title=text(plugin.title),
        description=text(getattr(plugin, "description", "")),
        connection=ctx.connection,
        fields=field_views(schema, values, errors, ctx.locale, gettext=text),
        on=bool(row and row.is_on),
        schema_errors=[text(e) for e in errors.get("_schema", [])],
        site_events=site_events(ctx) if kind == "integrations" and plugin.client_script else [],
        notices=notices,
        can_check=can_check(plugin),
        can_edit=ctx.can_connection(ctx.connection.id, GrantLevel.EDIT),
        can_full=ctx.can_connection(ctx.connection.id, GrantLevel.FULL),
    )


def site_events(ctx: Ctx) -> list[tuple[str, str]]:
    """(event, label) of every site event the enabled apps declare, with the runtime's own:
    what a browser-side integration (Metrika, GA ...) turns into goals."""
    rows = [(event, translate(label, ctx.locale)) for event, label in CORE_SITE_EVENTS.items()]
    for app in ctx.perezvon.host.registry.applications.values():
        text = plugin_text(app, ctx.locale)
        rows += [(event, text(label)) for event, label in app.site_events.items()]
    return rows


async def project_grants(ctx: Ctx) -> Response:
    """Full access to a project manages who else has access to it and its connections (docs/admin.md)."""
    from perezvon.web.admin.views.people import find_or_invite

    project = ctx.project
    form = ctx.form
    if form.get("action") == "delete":
        grant_id = int(form["id"]) if (form.get("id") or "").isdigit() else -1
        grant = await AccessGrant.get_or_none(id=grant_id).prefetch_related("connection")
        if grant is not None and (
            grant.project_id == project.id
            or (grant.connection is not None and grant.connection.project_id == project.id)
        ):
            await grant.delete()
            ctx.flash(ctx._("The grant is removed."))
        return ctx.redirect(f"/projects/{project.id}")
    level = form.get("level")
    target = form.get("target") or "project"
    connection_id = None
    if target != "project":
        connection_id = int(target) if target.isdigit() else -1
        if not await Connection.exists(id=connection_id, project_id=project.id):
            connection_id = -1
    errors: dict[str, list[str]] = {}
    link = None
    may_see_contacts = form.get("may_see_contacts") == "1"
    covered = (
        [connection_id]
        if connection_id
        else await Connection.filter(project_id=project.id).values_list("id", flat=True)
    )
    if level not in GrantLevel.ORDER or connection_id == -1:
        errors["level"] = ["Choose a level."]
        user = None
    elif may_see_contacts and not all(ctx.access.sees_contacts(int(cid)) for cid in covered):
        # as with levels: nobody gives more than they have
        errors["may_see_contacts"] = ["You cannot let others see clients' phones and e-mails: you do not see them."]
        user = None
    else:  # a phone with no account yet is invited, as on a connection's page of users
        user, link = await find_or_invite(ctx, form, errors)
    if errors or user is None:
        for messages in errors.values():
            for message in messages:
                ctx.flash(ctx._(message), "error")
    else:
        await AccessGrant.filter(
            user_id=user.id, project_id=None if connection_id else project.id, connection_id=connection_id
        ).delete()
        await AccessGrant.create(
            user=user,
            level=level,
            project_id=None if connection_id else project.id,
            connection_id=connection_id,
            may_see_contacts=may_see_contacts,
        )
        ctx.flash(ctx._("The grant is saved."))
        if link:
            ctx.flash(
                ctx._("The e-mail could not be sent. Pass this one-time link to the user yourself:") + " " + link,
                "error",
            )
    return ctx.redirect(f"/projects/{project.id}")
