"""The visual editor's shell: the page, the form, the live preview frame and the save.

The connection's app settings page (``/connections/<id>/apps/<key>``) of an app
that declares an editor (``Application.editor``, a :class:`perezvon.api.AppEditor`)
shows this editor; every other plugin keeps the form generated from its schema
(``?form=1`` shows that form for these as well). Everything that knows an app's
markup -- the clickable elements, the switches above the preview, the scripts
that map elements to settings and bring the preview to a screen -- is the
plugin's own, in its ``static/`` folder; this module knows no app by name.

* The plugin's marshmallow schema stays the single source of truth: the page
  carries a description of it (:func:`describe`: kinds, labels, choices, limits)
  as JSON data, and the editor script builds its inputs from that.
* The preview is the real site script: a sandboxed iframe
  (``.../preview``, static scripts only) loads the runtime and the app's
  ``client_script`` and gets its config from ``.../draft``, which loads the
  draft through the schema and runs the app's own ``client_config`` -- the same
  code a visitor's browser gets. The preview page's CSP allows no connection at
  all (``connect-src 'none'``) and its ``fetch`` answers leads locally, so no
  lead can leave it.
* Saving posts the draft as JSON; the schema validates it, errors come back by
  field path and are shown next to their fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from starlette.responses import JSONResponse, Response

from perezvon.core import enablement
from perezvon.core.models import GrantLevel
from perezvon.core.storable import BadJson, parse_json
from perezvon.web.admin.forms import choice_labels, flat_errors
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.i18n import plugin_text, translate, translate_errors
from perezvon.web.admin.views import projects
from perezvon.web.plugin_files import plugin_static_url

PREVIEW_CSP = (
    "default-src 'none'; script-src {origin}; style-src 'unsafe-inline'; img-src {origin} https: data:; "
    "connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)


def describe(schema: Schema, locale: str, text: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The schema as the editor script needs it: {name: {kind, label, help, choices, labels, min, max, ...}};
    labels, help and the choices' labels are English message ids translated by ``text`` (the plugin's
    catalog, then the admin's), the choices themselves stay codes."""
    tr = text or (lambda message: translate(message, locale))
    out: dict[str, Any] = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        meta = field.metadata
        item: dict[str, Any] = {
            "label": tr(str(meta.get("label") or name.replace("_", " ").capitalize())),
            "help": tr(str(meta["help"])) if meta.get("help") else "",
            "nullable": bool(field.allow_none),
        }
        default = field.load_default
        if not callable(default) and default is not fields.missing_ and isinstance(default, (str, int, float, bool)):
            item["default"] = default
        for validator in getattr(field, "validators", []):
            if isinstance(validator, validate.OneOf):
                item["choices"] = [str(c) for c in validator.choices]
                item["labels"] = [tr(label) if label else "" for label in choice_labels(validator)]
            elif isinstance(validator, validate.Range):
                item["min"], item["max"] = validator.min, validator.max
            elif isinstance(validator, validate.Length) and validator.max is not None:
                item["maxlength"] = validator.max
        if isinstance(field, fields.Nested):
            item["kind"] = "group"
            item["fields"] = describe(field.schema, locale, tr)
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            item["kind"] = "list"
            item["fields"] = describe(field.inner.schema, locale, tr)
        elif isinstance(field, fields.List):
            item["kind"] = "multi"
            inner = [v for v in getattr(field.inner, "validators", []) if isinstance(v, validate.OneOf)]
            item["choices"] = [str(c) for c in inner[0].choices] if inner else []
            item["labels"] = [tr(label) if label else "" for label in choice_labels(inner[0])] if inner else []
        elif isinstance(field, fields.Boolean):
            item["kind"] = "checkbox"
        elif isinstance(field, (fields.Integer, fields.Float)):
            item["kind"] = "number"
            item["step"] = 1 if isinstance(field, fields.Integer) else 0.1
        elif "choices" in item:
            item["kind"] = "select"
        elif any(isinstance(v, validate.Regexp) and "rgba" in v.regex.pattern for v in field.validators):
            item["kind"] = "color"
        else:
            item["kind"] = "textarea" if item.get("maxlength", 0) > 150 else "text"
        out[name] = item
    return out


def _app(ctx: Ctx) -> tuple[str, Any] | None:
    """The app of the URL when it declares an editor."""
    key = ctx.request.path_params.get("key", "")
    app = ctx.perezvon.host.registry.applications.get(key)
    if app is None or app.editor is None:
        return None
    return key, app


def _owner(ctx: Ctx, key: str) -> str:
    return ctx.perezvon.host.registry.owner[("application", key)]


def editor_files(ctx: Ctx, key: str, names: tuple[str, ...]) -> list[str]:
    """URLs of an app's editor files, served from its plugin's ``static/`` folder."""
    return [plugin_static_url(_owner(ctx, key), name) for name in names]


def editor_page_data(ctx: Ctx, key: str, app: Any) -> dict[str, Any]:
    """What the editor page needs of the app's declared editor, its labels translated
    through the plugin's catalog."""
    editor, _ = app.editor, plugin_text(app, ctx.locale)

    return {
        "elements": [
            {"name": e.name, "selector": e.selector, "label": _(e.label), "fields": list(e.fields)}
            for e in editor.elements
        ],
        "options": [
            {"name": o.name, "label": _(o.label), "choices": [[v, _(label)] for v, label in o.choices]}
            for o in editor.options
        ],
        "texts": {name: _(message) for name, message in editor.texts},
    }


async def plugin_settings(ctx: Ctx) -> Response:
    """The app settings page: the visual editor of an app that declares one, else the generated form."""
    params = ctx.request.path_params
    if params.get("kind") != "apps" or _app(ctx) is None or ctx.request.query_params.get("form"):
        return await projects.plugin_settings(ctx)
    if ctx.request.method == "POST" and "settings_json" not in ctx.form:
        return await projects.plugin_settings(ctx)
    key, app = _app(ctx)
    schema = app.settings_schema()
    row = await enablement.enablement(ctx.connection, enablement.APPLICATION, key)
    # stored settings that no longer validate are shown as stored, with their errors
    draft, messages = enablement.settings_for_display(app, row.settings if row else {})
    errors = flat_errors(translate_errors(messages, ctx.locale))
    if ctx.request.method == "POST":
        if not ctx.can_connection(ctx.connection.id, GrantLevel.EDIT):
            return await ctx.error(403, "You do not have access to this.")
        loaded, draft, errors = _load_json(schema, ctx.form.get("settings_json") or "", ctx.locale)
        if loaded is not None:
            await enablement.store_settings(ctx.connection, enablement.APPLICATION, key, loaded)
            site_script = getattr(ctx.request.app.state, "site_script", None)
            if site_script is not None:  # visitors get the new config at once
                site_script.forget(ctx.connection.token)
            ctx.flash(ctx._("Saved."))
            return ctx.redirect(f"/connections/{ctx.connection.id}/apps/{key}")
    base = f"/connections/{ctx.connection.id}/editor/{key}"
    data = {
        "app": key,
        "schema": describe(schema, ctx.locale, plugin_text(app, ctx.locale)),
        "settings": draft,
        "errors": errors,
        "preview": base + "/preview",
        "draft": base + "/draft",
        "locale": ctx.locale,
        "can_edit": ctx.can_connection(ctx.connection.id, GrantLevel.EDIT),
        **editor_page_data(ctx, key, app),
    }
    return await ctx.render(
        "admin/app_editor.html",
        status_code=400 if ctx.request.method == "POST" else 200,
        plugin=app,
        title=plugin_text(app, ctx.locale)(app.title),
        key=key,
        connection=ctx.connection,
        on=bool(row and row.is_on),
        errors=errors,
        options=data["options"],
        scripts=editor_files(ctx, key, app.editor.scripts),
        stylesheets=editor_files(ctx, key, app.editor.stylesheets),
        editor_data=json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"),
        can_edit=data["can_edit"],
    )


def _load_json(schema: Schema, text: str, locale: str) -> tuple[dict | None, Any, dict[str, list[str]]]:
    try:
        raw = parse_json(text)
    except BadJson:  # not JSON, NaN, or nested too deeply (Python's parser recurses)
        return None, {}, {"_schema": [translate("Not valid JSON.", locale)]}
    if not isinstance(raw, dict):
        return None, {}, {"_schema": [translate("Not valid JSON.", locale)]}
    try:
        return enablement.validated(schema, raw), raw, {}
    except ValidationError as exc:
        return None, enablement.displayable(raw), flat_errors(translate_errors(exc.messages, locale))


async def preview(ctx: Ctx) -> Response:
    """The preview frame: an empty page with static scripts; the editor sends it the config."""
    found = _app(ctx)
    if found is None:
        return ctx.redirect(f"/connections/{ctx.connection.id}")
    key, app = found
    site_script = ctx.request.app.state.site_script
    origin = f"{ctx.request.url.scheme}://{ctx.request.url.netloc}"
    response = await ctx.render(
        "admin/editor_preview.html",
        runtime=site_script.assets["runtime"].path,
        script=site_script.app_assets[key].path,
        key=key,
        scripts=editor_files(ctx, key, app.editor.preview_scripts),
    )
    response.headers["Content-Security-Policy"] = PREVIEW_CSP.format(origin=origin)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


async def draft(ctx: Ctx) -> Response:
    """The draft through the schema and the app's ``client_config``: the config the preview runs."""
    found = _app(ctx)
    if found is None:
        return JSONResponse({"errors": {"key": ["No editor for this app."]}}, status_code=422)
    key, app = found
    try:
        raw = parse_json(await ctx.request.body() or b"{}")
    except BadJson:
        raw = None
    if not isinstance(raw, dict):
        return JSONResponse({"errors": {"_schema": [ctx._("Not valid JSON.")]}}, status_code=422)
    try:
        settings = enablement.validated(app, raw.get("settings") or {})
    except ValidationError as exc:
        return JSONResponse({"errors": flat_errors(translate_errors(exc.messages, ctx.locale))}, status_code=422)
    site_script = ctx.request.app.state.site_script
    config = await site_script.config_for(ctx.connection)
    config["api"] = ""
    config["integrations"], config["integration_scripts"] = {}, []
    config["apps"] = [
        {
            "key": app.key,
            "title": app.title,
            "source": app.lead_source,
            "script": site_script.app_assets[key].path,
            "config": app.client_config(ctx.connection, settings),
        }
    ]
    return JSONResponse({"config": config, "errors": {}})
