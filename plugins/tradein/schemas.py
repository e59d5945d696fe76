"""The trade-in form's per-connection settings (docs/tradein.md). The defaults are a finished form
with a bundled list of common makes and models (``makes.json``), which each connection may edit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from perezvon.api import CHANNELS, Color, SettingsSchema, label, nested, words
from perezvon.plugins.tradein.photos import MAX_PHOTOS, PHOTO_ID

#: the bundled list: make -> models
MAKES: dict[str, list[str]] = json.loads(Path(__file__).with_name("makes.json").read_text(encoding="utf-8"))
MAX_MAKES_TEXT = 20000
#: the oldest year the form accepts at most (a settings' floor)
OLDEST_YEAR = 1950
#: the largest mileage a connection may allow, km
MAX_MILEAGE = 5_000_000
SIDES = ("right", "left", "bottom")


def makes_text(makes: dict[str, list[str]]) -> str:
    """The list as the settings keep it: one make a line, ``Make: Model, Model``."""
    return "\n".join(f"{make}: {', '.join(models)}" for make, models in makes.items())


def parse_makes(text: str) -> list[dict[str, Any]]:
    """``Make: Model, Model`` lines as ``[{"make", "models"}]``; blank lines skipped."""
    result = []
    for line in text.splitlines():
        make, _, models = line.partition(":")
        if make.strip():
            result.append({"make": make.strip(), "models": [m.strip() for m in models.split(",") if m.strip()]})
    return result


class LookSchema(SettingsSchema):
    tab_text = words("Оценить авто в трейд-ин", 60, "Tab text")
    tab_side = fields.String(load_default="right", validate=validate.OneOf(SIDES), metadata=label("Tab position"))
    tab_background = Color("#0f766e", metadata=label("Tab background"))
    tab_text_color = Color("#ffffff", metadata=label("Tab text colour"))
    background = Color("#ffffff", metadata=label("Background"))
    text_color = Color("#0f172a", metadata=label("Text colour"))
    accent = Color("#0f766e", metadata=label("Button colour"))
    button_text_color = Color("#ffffff", metadata=label("Button text colour"))
    radius = fields.Integer(
        load_default=16, validate=validate.Range(min=0, max=40), metadata=label("Corner radius, px")
    )


class TextsSchema(SettingsSchema):
    title = words("Оценим ваш автомобиль в трейд-ин", 120, "Title")
    step_car = words("Марка и модель", 80, "Step: car")
    step_year = words("Год и пробег", 80, "Step: year and mileage")
    step_photos = words("Фотографии (по желанию)", 80, "Step: photos")
    step_phone = words("Куда перезвонить", 80, "Step: phone")
    make_label = words("Марка", 40, "Make")
    model_label = words("Модель", 40, "Model")
    year_label = words("Год выпуска", 40, "Year")
    mileage_label = words("Пробег, км", 40, "Mileage")
    photos_label = words("До 5 фото: JPEG, PNG или WebP, до 5 МБ каждое", 120, "Photos")
    photos_button = words("Выбрать фото", 40, "Photos button")
    phone_label = words("Телефон", 40, "Phone")
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    next_text = words("Далее", 30, "Next button")
    back_text = words("Назад", 30, "Back button")
    send_text = words("Получить оценку", 40, "Send button")
    done_text = words("Спасибо! Оценщик перезвонит вам в ближайшее время.", 200, "Thank-you text")


class TradeinSettings(SettingsSchema):
    look = nested(LookSchema, "Look")
    texts = nested(TextsSchema, "Texts")
    makes = fields.String(
        load_default=makes_text(MAKES),
        validate=validate.Length(min=1, max=MAX_MAKES_TEXT),
        metadata=label("Makes and models", help="one make a line: Make: Model, Model"),
    )
    min_year = fields.Integer(
        load_default=1990, validate=validate.Range(min=OLDEST_YEAR, max=2100), metadata=label("Oldest year")
    )
    max_mileage = fields.Integer(
        load_default=1000000, validate=validate.Range(min=1000, max=MAX_MILEAGE), metadata=label("Largest mileage, km")
    )
    photos = fields.Boolean(load_default=True, metadata=label("Photos step"))
    pages = fields.String(
        load_default="",
        validate=validate.Length(max=2000),
        metadata=label("Pages", help="the tab shows where the address contains one of these lines; empty: everywhere"),
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        load_default=lambda: list(CHANNELS),
        metadata=label("Traffic channels"),
    )
    phone_mask = fields.String(
        load_default="+7 (999) 999-99-99",
        validate=[
            validate.Length(min=4, max=40),
            validate.Regexp(r"^[0-9+() \-]*9[0-9+() \-]*$", error="A mask with 9 for each digit."),
        ],
        metadata=label("Phone mask (9 = digit)"),
    )

    @validates("makes")
    def _some_make(self, value: str, **_: Any) -> None:
        if not parse_makes(value):
            raise ValidationError("At least one make.")


class CarSchema(Schema):
    """What a trade-in lead carries in ``extra`` (the form's steps), checked by the intake before the
    lead is taken (``LeadSource.extra_schema``): a clear 422 for a car nobody could value. The
    messages are marshmallow's own, which the core's catalog translates."""

    make = fields.String(required=True, validate=validate.Length(min=1, max=100))
    model = fields.String(required=True, validate=validate.Length(min=1, max=100))
    year = fields.Integer(required=True, strict=True)
    mileage = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_MILEAGE))
    photos = fields.List(
        fields.String(validate=validate.Regexp(PHOTO_ID)), load_default=list, validate=validate.Length(max=MAX_PHOTOS)
    )

    @validates("year")
    def _a_year_of_cars(self, value: int, **_: Any) -> None:
        # next year's models are on sale in autumn; a process may run past New Year
        validate.Range(min=OLDEST_YEAR, max=dt.date.today().year + 1)(value)
