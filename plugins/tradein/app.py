"""The trade-in form as an application (docs/tradein.md): a tab on the page opens a form in steps --
make and model, year and mileage, photos, phone and consent -- whose lead is called back like any
other, with the car spoken to the operator and shown, photos too, on the admin's call page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from perezvon.api import (
    AppEditor,
    Application,
    EditorElement,
    Lead,
    LeadRow,
    LeadSource,
    PreviewOption,
    compiled_translations,
)
from perezvon.plugins.tradein.photos import KEY, MAX_PHOTOS, PHOTO_ID
from perezvon.plugins.tradein.schemas import CarSchema, TradeinSettings, parse_makes

CATALOG = Path(__file__).with_name("locales")

EDITOR = AppEditor(
    scripts=("editor.js",),
    preview_scripts=("preview.js",),
    elements=(
        EditorElement("close", ".x", "Close button", ("look.text_color",)),
        EditorElement(
            "button",
            ".go",
            "Button",
            ("look.accent", "look.button_text_color", "texts.next_text", "texts.send_text"),
        ),
        EditorElement("back", ".back", "Back button", ("texts.back_text",)),
        EditorElement("title", ".box h2", "Title", ("texts.title", "look.text_color")),
        EditorElement(
            "step",
            ".box h3",
            "Step title",
            ("texts.step_car", "texts.step_year", "texts.step_photos", "texts.step_phone"),
        ),
        EditorElement(
            "field",
            "input, select",
            "Fields",
            (
                "texts.make_label",
                "texts.model_label",
                "texts.year_label",
                "texts.mileage_label",
                "texts.photos_label",
                "texts.photos_button",
                "texts.phone_label",
                "phone_mask",
                "min_year",
                "max_mileage",
                "makes",
            ),
        ),
        EditorElement("consent", ".ok", "Consent", ("texts.consent_text",)),
        EditorElement("done", ".done", "Thank-you text", ("texts.done_text",)),
        EditorElement(
            "tab",
            ".tab",
            "Tab",
            ("look.tab_text", "look.tab_side", "look.tab_background", "look.tab_text_color", "pages", "channels"),
        ),
        EditorElement("box", ".box", "Form", ("look.background", "look.text_color", "look.radius", "photos")),
    ),
    options=(
        PreviewOption(
            "screen",
            "Screen",
            (("tab", "Tab"), ("car", "Car"), ("year", "Year and mileage"), ("photos", "Photos"), ("phone", "Phone")),
        ),
    ),
    texts=(("form-layer", "Changes apply to the form on every page of the site."),),
)
LEAD_SOURCE = LeadSource(key=KEY, title="Трейд-ин", calltouch_code=16, extra_schema=CarSchema)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any, limit: int = 60) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def car_of(extra: dict[str, Any]) -> dict[str, Any]:
    """The car as the form sent it, read defensively (the lead's ``extra`` comes from a browser)."""
    return {
        "make": _text(extra.get("make")),
        "model": _text(extra.get("model")),
        "year": _int(extra.get("year")),
        "mileage": _int(extra.get("mileage")),
        "photos": [p for p in extra.get("photos") or [] if isinstance(p, str) and PHOTO_ID.match(p)][:MAX_PHOTOS]
        if isinstance(extra.get("photos"), list)
        else [],
    }


class Tradein(Application):
    key = KEY
    title = "Trade-in form"
    description = (
        "A form in steps for a trade-in valuation: make and model, year, mileage, photos, phone. "
        "The operator hears the car; the photos are on the call's page."
    )
    summary = "Trade-in valuation requests with the car and photos."
    lead_source = KEY
    settings_schema = TradeinSettings
    client_script = Path(__file__).with_name("static") / "tradein.js"
    editor = EDITOR
    site_events: ClassVar[dict[str, str]] = {
        "tradein_opened": "Trade-in form opened",
        "tradein_step": "Trade-in form step reached",
        "tradein_lead": "Lead from the trade-in form",
    }

    def client_config(self, connection, settings: dict[str, Any]) -> dict[str, Any]:
        config = {key: value for key, value in settings.items() if key not in ("makes", "pages")}
        config["makes"] = parse_makes(settings["makes"])
        config["pages"] = [line.strip() for line in settings["pages"].splitlines() if line.strip()]
        config["max_photos"] = MAX_PHOTOS
        return config

    def spoken_details(self, lead: Lead) -> str:
        car = car_of(lead.extra or {})
        if not car["make"] and not car["model"]:
            return ""
        words = ["Трейд-ин:", car["make"], car["model"]]
        if car["year"]:
            words.append(f"{car['year']} года")
        text = " ".join(w for w in words if w)
        if car["mileage"] is not None:
            text += f", пробег {car['mileage']} километров"
        return text

    def lead_rows(self, lead: Lead, locale: str) -> list[LeadRow]:
        def _(message: str) -> str:
            return str(compiled_translations(CATALOG, locale).gettext(message))

        car = car_of(lead.extra or {})
        rows = [
            LeadRow(_("Make"), car["make"] or "—"),
            LeadRow(_("Model"), car["model"] or "—"),
            LeadRow(_("Year"), str(car["year"]) if car["year"] else "—"),
            LeadRow(_("Mileage, km"), f"{car['mileage']:,}".replace(",", " ") if car["mileage"] is not None else "—"),
        ]
        if car["photos"]:
            images = tuple(
                (f"/p/{KEY}/photos/{lead.connection_id}/{photo}", f"{_('Photo')} {n}")
                for n, photo in enumerate(car["photos"], 1)
            )
            rows.append(LeadRow(_("Photos"), "", images))
        return rows
