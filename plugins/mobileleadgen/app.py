"""The mobile lead generator as an application (docs/mobileleadgen.md): the lead generator's promotions
as a bottom sheet on phones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from perezvon.api import AppEditor, Application, EditorElement, LeadSource, PageGate, PreviewOption, shown_where_any
from perezvon.plugins.mobileleadgen.schemas import MAX_PER_SESSION, LiveTimerSchema, MobileLeadgenSettings

KEY = "mobileleadgen"
STATES = tuple(f"timer.{name}" for name in LiveTimerSchema._declared_fields if name.startswith("state_"))

#: the admin's visual editor: what a click on the preview picks (selectors inside the sheet's shadow
#: root, tried in this order) and the fields of the chosen generator's working or off-hours variant
#: each element edits (static/editor.js); "sheet." fields belong to the generator itself
EDITOR = AppEditor(
    scripts=("editor.js",),
    preview_scripts=("preview.js",),
    elements=(
        EditorElement("close", ".x", "Close button", ("cover.close_color",)),
        EditorElement("handle", ".grip", "Handle", ("sheet.handle_color", "sheet.radius", "sheet.overlay")),
        EditorElement("cta", ".cta", "Cover button", ("cover.cta_text", "call.button_from", "call.button_to")),
        EditorElement(
            "button",
            ".go",
            "Button",
            ("call.button_text", "call.button_from", "call.button_to", "call.button_text_color"),
        ),
        EditorElement(
            "info", ".info", "Text above the form", ("call.info_text", "call.info_text_color", "call.info_background")
        ),
        EditorElement("form_title", ".form h3", "Form title", ("call.form_title", "call.form_text_color")),
        EditorElement(
            "field",
            "input, select",
            "Fields",
            (
                "call.name_field",
                "call.name_placeholder",
                "call.phone_placeholder",
                "call.phone_mask",
                "call.day_label",
                "call.time_label",
            ),
        ),
        EditorElement("consent", ".ok", "Consent", ("call.consent_text",)),
        EditorElement(
            "disclaimer",
            ".dis",
            "Disclaimer",
            ("call.disclaimer", "call.link1_text", "call.link1_url", "call.link2_text", "call.link2_url"),
        ),
        EditorElement(
            "form",
            ".form",
            "Form",
            ("call.form_background", "call.form_text_color", "call.form_on", "call.form_delay_seconds"),
        ),
        EditorElement("timer_title", ".timer h2", "Timer title", ("timer.title", "timer.text_color")),
        EditorElement("timer_state", ".timer .state", "Call state", STATES),
        EditorElement(
            "timer", ".timer", "Timer", ("timer.background", "timer.text_color", "timer.accent_color", "timer.text")
        ),
        EditorElement(
            "text1", ".cover h2", "Text 1 (headline)", ("cover.text1", "cover.text1_color", "cover.text1_size")
        ),
        EditorElement("text2", ".cover p", "Text 2", ("cover.text2", "cover.text2_color")),
        EditorElement("cover", ".cover, .box", "Cover", ("cover.background", "cover.background_image")),
    ),
    options=(
        PreviewOption("generator", "Lead generator"),  # filled with the generators by static/editor.js
        PreviewOption("screen", "Screen", (("cover", "Cover"), ("call", "Form"), ("timer", "Timer"))),
    ),
    texts=(
        ("generator-layer", "Changes apply to this lead generator in the hours chosen above."),
        ("new-generator", "New lead generator"),
    ),
)
LEAD_SOURCE = LeadSource(key=KEY, title="Мобильный генератор лидов", calltouch_code=13)


class MobileLeadgen(Application):
    key = KEY
    title = "Mobile lead generator"
    description = "Promotions for phones: a bottom sheet with a cover, the form and a call timer; swiped down to close."
    summary = "Promotions for phones as a bottom sheet."
    lead_source = KEY
    settings_schema = MobileLeadgenSettings
    client_script = Path(__file__).with_name("static") / "mobileleadgen.js"
    editor = EDITOR
    #: phones only: on wider screens the site script neither fetches nor starts it
    max_viewport_px = 768
    #: the goals analytics get: Metrika's "perezvon_<event>", GA's action "<event>" (docs/integrations.md)
    site_events: ClassVar[dict[str, str]] = {
        "mobileleadgen_shown": "Mobile lead generator shown",
        "mobileleadgen_lead": "Lead from a mobile lead generator",
    }

    def client_config(self, connection, settings: dict[str, Any]) -> dict[str, Any]:
        # switched-off generators never reach the browser
        return {"max_per_session": MAX_PER_SESSION, "generators": [g for g in settings["generators"] if g["enabled"]]}

    def page_gate(self, settings: dict[str, Any]) -> PageGate:
        # each promotion shows where all its filters match; one without URL filters, anywhere
        return shown_where_any(g["filters"] for g in settings["generators"] if g["enabled"] and g["channels"])
