"""The slider as an application (docs/slider.md): a side tab that opens a vertical set of cards."""

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
from perezvon.plugins.slider.schemas import SliderSettings

KEY = "slider"

#: the admin's visual editor: what a click on the preview picks (selectors inside the slider's shadow
#: root, tried in this order) and the fields it edits; "card." fields are the card chosen above the
#: preview (static/editor.js)
EDITOR = AppEditor(
    scripts=("editor.js",),
    preview_scripts=("preview.js",),
    elements=(
        EditorElement("close", ".x", "Close button", ("look.close_color",)),
        EditorElement("back", ".back", "Back", ("form.back_text", "look.accent_color")),
        EditorElement(
            "button",
            ".go",
            "Button",
            ("form.button_text", "card.details_button", "look.button_background", "look.button_text_color"),
        ),
        EditorElement("badge", ".badge", "Badge", ("card.badge", "look.accent_color")),
        EditorElement("card_title", ".card h3", "Card title", ("card.title", "look.card_title_color")),
        EditorElement("card_text", ".card p", "Card text", ("card.text", "look.card_text_color")),
        EditorElement("card_image", ".card img, .pic", "Card image", ("card.image",)),
        EditorElement(
            "details", ".details", "Promotion details", ("card.details", "card.details_button", "card.image")
        ),
        EditorElement(
            "card",
            ".card",
            "Card",
            (
                "card.id",
                "card.kind",
                "card.enabled",
                "card.action",
                "card.url",
                "card.new_tab",
                "look.card_background",
                "look.card_border",
                "look.radius",
            ),
        ),
        EditorElement(
            "phone",
            "input[type=tel]",
            "Phone field",
            ("form.phone_placeholder", "form.phone_mask", "form.name_field", "form.name_placeholder"),
        ),
        EditorElement("select", "select", "Drop-downs", ("form.day_label", "form.time_label")),
        EditorElement("consent", ".ok", "Consent", ("form.consent_text", "form.consent_checked")),
        EditorElement(
            "disclaimer",
            ".dis",
            "Disclaimer",
            ("form.disclaimer", "form.link1_text", "form.link1_url", "form.link2_text", "form.link2_url"),
        ),
        EditorElement(
            "state",
            ".state",
            "Call state",
            tuple(f"closing.{name}" for name in CallStateTexts._declared_fields),
        ),
        EditorElement(
            "closing",
            ".closing",
            "Closing screen",
            ("closing.working_title", "closing.working_text", "closing.offhours_title", "closing.offhours_text"),
        ),
        EditorElement(
            "form", "form, .intro", "Form", ("form.title", "form.text", "form.offhours_title", "look.accent_color")
        ),
        EditorElement("title", "h2", "Panel title", ("look.title", "look.title_color")),
        EditorElement(
            "tab",
            ".tab",
            "Side tab",
            ("look.tab_label", "look.side", "look.tab_top_percent", "look.tab_background", "look.tab_text_color"),
        ),
        EditorElement(
            "panel",
            ".panel",
            "Panel",
            ("look.panel_background", "look.panel_width", "look.font_family", "look.radius"),
        ),
        EditorElement("overlay", ".ov", "Page overlay", ("look.overlay",)),
    ),
    options=(
        PreviewOption("card", "Card"),  # filled with the cards by static/editor.js
        PreviewOption(
            "screen",
            "Screen",
            (
                ("cards", "Cards"),
                ("tab", "Tab only"),
                ("details", "Promotion details"),
                ("form", "Callback form"),
                ("closing", "Closing"),
            ),
        ),
    ),
    texts=(
        ("card-layer", "Changes apply to the card chosen above and to the look of every card."),
        ("new-card", "New card"),
        ("up", "Move up"),
        ("limit", "At most 12 cards."),
    ),
)
#: no Calltouch code of its own (SPEC S4.2 names codes 11-15 for the other apps): "other", 16
LEAD_SOURCE = LeadSource(key=KEY, title="Слайдер", calltouch_code=16)


class Slider(Application):
    key = KEY
    title = "Slider"
    description = (
        "A compact side tab that opens a vertical set of cards -- services, promotions, links and a "
        "callback form -- and makes the visitor's target actions easy."
    )
    summary = "A side tab with cards: services, promotions, links, a callback."
    lead_source = KEY
    settings_schema = SliderSettings
    client_script = Path(__file__).with_name("static") / "slider.js"
    editor = EDITOR
    #: the goals analytics get: Metrika's "perezvon_<event>", GA's action "<event>" (docs/integrations.md);
    #: a card click carries the card's id in its detail
    site_events: ClassVar[dict[str, str]] = {
        "slider_opened": "Slider opened",
        "slider_card_click": "Slider card clicked",
        "slider_lead": "Lead from the slider",
    }

    def client_config(self, connection, settings: dict[str, Any]) -> dict[str, Any]:
        # hidden cards never reach the browser
        return {**settings, "cards": [card for card in settings["cards"] if card["enabled"]]}

    def page_gate(self, settings: dict[str, Any]) -> PageGate:
        if not settings["display"]["channels"] or not any(card["enabled"] for card in settings["cards"]):
            return []
        return hidden_where(settings["display"]["rules"])
