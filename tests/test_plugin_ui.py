"""Plugins own their UI (docs/plugins.md, "Package shape"; docs/admin.md, "The visual editor").

* The admin's editor shell knows none of the widget's CSS classes: renaming one is an edit
  inside plugins/widget/ only (the editor itself is exercised in Chromium by test_admin_editor.py).
* A plugin's ``static/`` is served at ``/plugins/<plugin>/static/`` and its ``templates/`` join the
  admin's loader as ``"<plugin>/..."``, with no registration code in the plugin.
* Applications declare their editor and their site events.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest

from perezvon.api import Application, PluginError, Registry
from perezvon.web.admin.i18n import environment, plugin_template_packages, plugin_text
from perezvon.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
WIDGET_JS = ROOT / "plugins" / "widget" / "static" / "widget.js"
RUNTIME_JS = ROOT / "web" / "static" / "site" / "runtime.js"
CLASS_ATTRIBUTE = re.compile(r'"class":\s*"([^"]*)"')
JS_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')


def classes_created(source: str) -> set[str]:
    """The classes a site script puts on its elements (``el("div", {"class": "box f-"})``)."""
    return {name for value in CLASS_ATTRIBUTE.findall(source) for name in value.split() if not name.endswith("-")}


def widget_classes() -> set[str]:
    """Every class the widget's script defines -- styled in its CSS or set on its elements --
    less those the shared site runtime creates (those are the runtime's, not the widget's)."""
    source = WIDGET_JS.read_text()
    css = source[source.index("var CSS = [") :]
    css = css[: css.index("];")]
    styled = set(re.findall(r"\.(-?[A-Za-z_][\w-]*)", re.sub(r"url\([^)]*\)", "", css)))
    return (styled | classes_created(source)) - classes_created(RUNTIME_JS.read_text())


def strings_in(path: Path) -> list[str]:
    """The string literals of a script or module, and the quoted values of a template: where a
    selector naming a class would be (property access like ``r.ok`` is not one)."""
    text = path.read_text()
    if path.suffix == ".py":
        return [
            node.value
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
    return [literal[1:-1] for literal in JS_STRING.findall(text)]


def selectors_naming(paths, classes: set[str]) -> dict[str, set[str]]:
    """file -> the classes of ``classes`` that its strings use as CSS selectors (``.box``, ``.tl .lnk``)."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for text in strings_in(path):
            for name in classes:
                if re.search(r"(?<![\w-])\." + re.escape(name) + r"(?![\w-])", text):
                    found.setdefault(str(path.relative_to(ROOT)), set()).add(name)
    return found


def test_the_admin_shell_knows_none_of_the_widgets_classes():
    classes = widget_classes()
    # the widget's own markup: the pieces click-to-edit picks
    assert {"box", "ov", "x", "go", "lnk", "tl", "ok", "big", "btn", "state", "f-edge"} <= classes
    web = [p for p in (ROOT / "web").rglob("*") if p.suffix in (".js", ".py", ".html") and p.is_file()]
    assert len(web) > 30
    assert selectors_naming(web, classes) == {}
    # the same scan finds them where they now live: the widget's own editor declaration and preview script
    plugin = selectors_naming([ROOT / "plugins/widget/app.py", ROOT / "plugins/widget/static/preview.js"], classes)
    assert {"x", "go", "lnk", "tl", "box", "ov", "btn", "big", "ok", "state"} <= set().union(*plugin.values())


def test_the_widget_and_the_leadgen_declare_their_editor_and_site_events(perezvon_app):
    registry = perezvon_app.host.registry
    for key in ("widget", "leadgen", "mobilepanel", "mobileleadgen", "slider"):
        app = registry.applications[key]
        assert app.editor.scripts and app.editor.preview_scripts and app.editor.elements
        static = ROOT / "plugins" / key / "static"
        for name in (*app.editor.scripts, *app.editor.preview_scripts):
            assert (static / name).is_file()
        assert app.site_events and all(event.startswith(key + "_") for event in app.site_events)
        # every label the editor and the analytics show is in the plugin's own Russian catalog
        catalog = (ROOT / "plugins" / key / "locales/ru/LC_MESSAGES/messages.po").read_text()
        labels = (
            [e.label for e in app.editor.elements]
            + [o.label for o in app.editor.options]
            + [label for o in app.editor.options for _, label in o.choices]
            + [m for _, m in app.editor.texts]
            + list(app.site_events.values())
        )
        missing = [
            label for label in labels if f'msgid "{label}"' not in catalog or plugin_text(app, "ru")(label) == label
        ]
        assert missing == []
    # labels through the plugin's own catalog, Russian first
    widget, leadgen = registry.applications["widget"], registry.applications["leadgen"]
    assert plugin_text(widget, "ru")("Widget shown") == "Виджет показан"
    assert plugin_text(widget, "en")("Widget shown") == "Widget shown"
    assert plugin_text(leadgen, "ru")("Text curtain") == "Шторка с текстом"


def test_a_site_event_must_be_named_after_its_app():
    class Bad(Application):
        key = "bad"
        title = "Bad"
        lead_source = "api"
        site_events = {"clicked": "Clicked"}

    registry = Registry()
    registry.current_plugin = "bad_plugin"
    with pytest.raises(PluginError, match="'bad_<what>'"):
        registry.add_application(Bad())


async def test_a_plugins_static_files_are_served_by_convention(perezvon_app):
    transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.get("/plugins/widget/static/editor.js")
        assert answer.status_code == 200 and 'PerezvonEditor.define("widget"' in answer.text
        assert answer.headers["cache-control"] == "public, max-age=300" and answer.headers["etag"]
        again = await client.get("/plugins/widget/static/editor.js", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304
        assert (await client.get("/plugins/metrika/static/metrika.js")).status_code == 200
        assert (await client.get("/plugins/widget/static/nosuch.js")).status_code == 404
        assert (await client.get("/plugins/widget/static/../app.py")).status_code == 404
        assert (await client.get("/plugins/widget/static/%2e%2e/app.py")).status_code == 404
        # a plugin that is not enabled, or has no static/ folder, has nothing there
        assert (await client.get("/plugins/asterisk/static/x.js")).status_code == 404


def test_a_plugins_templates_join_the_admin_loader_under_its_name(perezvon_app):
    packages = plugin_template_packages(perezvon_app.host)
    assert ("mail", "perezvon.plugins.mail") in packages
    env = environment("ru", packages)
    assert env.get_template("mail/mail/_layout.html").filename.endswith("plugins/mail/templates/mail/_layout.html")
    assert env.get_template("admin/base.html")  # the admin's own stay where they were


def _labelled_fields(schema, prefix=""):
    """(path, field) for every field of a settings schema, nested parts included."""
    from marshmallow import fields as ma_fields

    for name, field in schema.fields.items():
        yield f"{prefix}{name}", field
        inner = field.inner if isinstance(field, ma_fields.List) else field
        if isinstance(inner, ma_fields.Nested):
            yield from _labelled_fields(inner.schema, f"{prefix}{name}.")


@pytest.mark.parametrize("key", ["widget", "leadgen", "mobilepanel", "mobileleadgen", "slider"])
def test_an_apps_settings_labels_are_english_msgids_translated_by_its_catalog(perezvon_app, key):
    """The one label convention (docs/plugins.md): ``label``/``help`` are English message ids, and the
    plugin's own catalog has the Russian -- so an English page shows no Russian and a Russian page no English."""
    from perezvon.core.i18n import plugin_gettext

    app = perezvon_app.host.registry.applications[key]
    untranslated, russian_ids = [], []
    for path, field in _labelled_fields(app.settings_schema()):
        text = field.metadata.get("label")
        if not text:
            continue
        if any("а" <= ch <= "я" for ch in text.lower()):
            russian_ids.append((path, text))
        elif plugin_gettext(app, text, "ru") == text:
            untranslated.append((path, text))
    assert not russian_ids, f"labels must be English message ids: {russian_ids}"
    assert not untranslated, f"no Russian in plugins/{key}/locales: {untranslated}"
