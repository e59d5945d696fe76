"""The mobile panel as an application (docs/mobilepanel.md): a bar at the bottom of phone screens with
call, callback, route and messenger buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from perezvon.api import (
    AppEditor,
    Application,
    CallStateTexts,
    EditorElement,
    LeadSource,
    PageGate,
    PreviewOption,
    hidden_where,
)
from perezvon.plugins.mobilepanel.schemas import MobilePanelSettings

KEY = "mobilepanel"


def _button(name: str, label: str, *more: str) -> EditorElement:
    return EditorElement(
        name,
        f".b-{name}",
        label,
        tuple(f"{name}.{field}" for field in ("enabled", "position", "label", "background", "text_color", *more)),
    )


#: the admin's visual editor: what a click on the preview picks (selectors inside the panel's shadow
#: root, tried in this order) and the settings paths each element edits (static/editor.js)
EDITOR = AppEditor(
    scripts=("editor.js",),
    preview_scripts=("preview.js",),
    elements=(
        _button("call", "Call button", "phone"),
        _button("callback", "Callback button"),
        _button("route", "Route button", "list_title"),
        _button("messengers", "Messengers button", "list_title", "telegram", "whatsapp", "vk", "viber"),
        EditorElement("form_title", ".sheet h2", "Form title", ("callback.title",)),
        EditorElement("phone", "input[type=tel]", "Phone field", ("callback.phone_placeholder", "callback.phone_mask")),
        EditorElement("go", ".go", "Form button", ("callback.button_text",)),
        EditorElement("consent", ".ok", "Consent", ("callback.consent_text", "callback.consent_checked")),
        EditorElement(
            "disclaimer", ".dis", "Disclaimer", ("callback.disclaimer", "callback.link1_text", "callback.link1_url")
        ),
        EditorElement(
            "state",
            ".state",
            "Call state",
            ("callback.thanks", *(f"callback.{name}" for name in CallStateTexts._declared_fields)),
        ),
        EditorElement(
            "bar",
            ".bar",
            "Bar",
            ("bar.background", "bar.border_color", "bar.font_family", "bar.bottom_offset", "bar.show_labels"),
        ),
    ),
    options=(
        PreviewOption(
            "screen",
            "Screen",
            (("bar", "Bar"), ("callback", "Callback form"), ("closing", "After sending"), ("messengers", "Messengers")),
        ),
    ),
    texts=(("settings-layer", "Changes apply to the panel on every page where it shows."),),
)
LEAD_SOURCE = LeadSource(key=KEY, title="Мобильная панель", calltouch_code=14)


class MobilePanel(Application):
    key = KEY
    title = "Mobile panel"
    description = "A bar at the bottom of phone screens: call, callback, route and messengers."
    summary = "Call, callback, route and messenger buttons for phone visitors."
    lead_source = KEY
    settings_schema = MobilePanelSettings
    client_script = Path(__file__).with_name("static") / "mobilepanel.js"
    editor = EDITOR
    #: phones only: on wider screens the site script neither fetches nor starts it
    max_viewport_px = 768
    #: the goals analytics get: Metrika's "perezvon_<event>", GA's action "<event>" (docs/integrations.md)
    site_events: ClassVar[dict[str, str]] = {
        "mobilepanel_shown": "Mobile panel shown",
        "mobilepanel_call_click": "Mobile panel: call",
        "mobilepanel_route_click": "Mobile panel: route",
        "mobilepanel_messenger_click": "Mobile panel: messenger",
        "mobilepanel_lead": "Lead from the mobile panel",
    }

    def page_gate(self, settings: dict[str, Any]) -> PageGate:
        if not any(channel["show"] for channel in settings["channels"].values()):
            return []
        return hidden_where(settings["rules"])
