"""The callback widget as an application (docs/site-script.md#the-widget)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from perezvon.api import AppEditor, Application, EditorElement, LeadSource, PageGate, PreviewOption, hidden_where
from perezvon.plugins.widget.schemas import WidgetSettings

KEY = "widget"

#: the admin's visual editor: what a click on the preview picks (selectors inside the widget's
#: shadow root, tried in this order) and the look fields each element styles (static/editor.js
#: puts them in the chosen trigger's or the off-hours look, or a screen's texts)
EDITOR = AppEditor(
    scripts=("editor.js",),
    preview_scripts=("preview.js",),
    elements=(
        EditorElement("close", ".x", "Close button", ("close_color",)),
        EditorElement(
            "button",
            ".go",
            "Button",
            ("button_text", "button_from", "button_to", "button_hover_from", "button_hover_to", "button_text_color"),
        ),
        EditorElement("time_link", ".lnk, .tl", "Link", ("time_link", "link_color")),
        EditorElement("title", "h2", "Title", ("title", "title_color", "title_size")),
        EditorElement(
            "phone",
            "input[type=tel]",
            "Phone field",
            ("phone_placeholder", "phone_mask", "field_background", "field_border", "field_text_color"),
        ),
        EditorElement(
            "name",
            "input[name=name]",
            "Name field",
            ("name_field", "name_placeholder", "field_background", "field_border", "field_text_color"),
        ),
        EditorElement("select", "select", "Drop-downs", ("select_background", "select_border", "select_text_color")),
        EditorElement("consent", ".ok", "Consent", ("consent_text", "consent_checked")),
        EditorElement(
            "disclaimer",
            ".dis",
            "Disclaimer",
            ("disclaimer", "link1_text", "link1_url", "link2_text", "link2_url", "disclaimer_color"),
        ),
        EditorElement("state", ".state", "Call state"),
        EditorElement("text", ".big, p", "Text", ("text", "text_color")),
        EditorElement("launcher", ".btn", "Call button"),
        EditorElement(
            "box", ".box", "Form box", ("format", "background", "background_image", "padding", "radius", "font_family")
        ),
        EditorElement("overlay", ".ov", "Page overlay", ("overlay",)),
    ),
    options=(
        PreviewOption(
            "format",
            "Format",
            (
                ("", "As set"),
                ("horizontal", "Horizontal"),
                ("square", "Square"),
                ("vertical", "Vertical"),
                ("edge", "Edge to edge"),
            ),
        ),
        PreviewOption(
            "trigger",
            "Trigger",
            (
                ("time", "By time"),
                ("exit", "On exit"),
                ("scroll", "By scroll"),
                ("hash", "HASH link"),
                ("button", "Call button"),
            ),
        ),
        PreviewOption("screen", "Screen", (("form", "Form"), ("time", "Time choice"), ("closing", "Closing"))),
    ),
    texts=(
        ("trigger-layer", "Changes apply to the trigger chosen above."),
        ("offhours-layer", "Changes apply to the off-hours look (every trigger)."),
        ("screen-layer", "Changes apply to this screen."),
        ("apply-all", "Apply style to all triggers"),
        ("applied", "Applied to all triggers."),
    ),
)
LEAD_SOURCE = LeadSource(key=KEY, title="Виджет обратного звонка", calltouch_code=11)


class Widget(Application):
    key = KEY
    title = "Callback widget"
    description = "A callback form that pops up by time, exit intent or scroll."
    lead_source = KEY
    settings_schema = WidgetSettings
    client_script = Path(__file__).with_name("static") / "widget.js"
    editor = EDITOR
    #: the goals analytics get: Metrika's "perezvon_<event>", GA's action "<event>" (docs/integrations.md)
    site_events: ClassVar[dict[str, str]] = {
        "widget_shown": "Widget shown",
        "widget_opened": "Widget opened",
        "widget_lead": "Lead from the widget",
    }

    def page_gate(self, settings: dict[str, Any]) -> PageGate:
        if settings["hashes"]:  # a #hash link on the page opens it whatever the rules say
            return None
        if not any(channel["show"] for channel in settings["channels"].values()):
            return []
        return hidden_where(settings["rules"])
