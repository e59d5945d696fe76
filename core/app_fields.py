"""Building blocks of site apps' settings schemas (docs/plugins.md#settings-building-blocks): colours,
web addresses, texts, nested parts with their defaults, the URL/UTM condition the runtime's
``matches`` reads, and the call-state lines its ``callProgress`` shows. Every app plugin builds on
them through ``perezvon.api``, so one app reads a colour or a rule as another does.

Each field's metadata carries its label (and help) as an English message id, as every plugin's
settings do (docs/plugins.md); the Russian is in the plugin's catalog, so a plugin using a block
translates its label (and the messages below, which the core's catalog also has)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

CHANNELS = ("direct", "organic", "ads", "referral", "social")
RULE_OPERATORS = ("contains", "not_contains", "equals", "not_equals", "starts_with")
RULE_TARGETS = ("url", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

_COLOR = (
    r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|"
    r"rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(,\s*(0|1|0?\.\d+)\s*)?\))$"
)

# dates stay ISO strings (YYYY-MM-DD), so loaded settings are plain JSON to store and send
_DATE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
_DATE_ERROR = "A date as YYYY-MM-DD."


def label(text: str, **more: str) -> dict[str, str]:
    """Field metadata with ``text`` as its label: an English message id, translated by the plugin's catalog."""
    return {"label": text, **more}


class Color(fields.String):
    """A colour as #hex (3, 6 or 8 digits) or rgb()/rgba() with opacity."""

    def __init__(self, default: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            load_default=default,
            allow_none=default is None,
            validate=validate.Regexp(_COLOR, error="A colour: #hex or rgb()/rgba()."),
            **kwargs,
        )


class WebUrl(fields.String):
    """An http(s) address (or empty): no javascript: or data: links from settings."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs).strip()
        if text and not text.startswith(("https://", "http://", "/")):
            raise ValidationError("An address starting with https:// or http://.")
        return text


def words(default: str, max_length: int, text: str, help: str = "") -> fields.String:
    meta = label(text, help=help) if help else label(text)
    return fields.String(load_default=default, validate=validate.Length(max=max_length), metadata=meta)


def nested(schema: type[Schema], text: str, **given: Any) -> fields.Nested:
    """A nested part whose default is the part's own defaults (over ``given``)."""
    return fields.Nested(schema, load_default=lambda: schema().load(given), metadata=label(text))


def day(text: str) -> fields.String:
    """A day as ``YYYY-MM-DD`` or none: an ISO string, so loaded settings stay plain JSON."""
    return fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(_DATE, error=_DATE_ERROR), metadata=label(text)
    )


class SettingsSchema(Schema):
    """A settings part: keys it does not know are dropped (settings saved by an older version load)."""

    class Meta:
        unknown = EXCLUDE


class UrlUtmCondition(SettingsSchema):
    """A condition on the page URL or one UTM field, with weight and period."""

    name = fields.String(
        load_default="", validate=validate.Length(max=200), metadata=label("Name (spoken to the operator)")
    )
    target = fields.String(load_default="url", validate=validate.OneOf(RULE_TARGETS), metadata=label("What to check"))
    operator = fields.String(
        load_default="contains", validate=validate.OneOf(RULE_OPERATORS), metadata=label("Condition")
    )
    value = fields.String(load_default="", validate=validate.Length(max=500), metadata=label("Value"))
    weight = fields.Integer(
        load_default=0, validate=validate.Range(min=-1000, max=1000), metadata=label("Weight (higher wins)")
    )
    date_from = day("From")
    date_to = day("To")

    @validates_schema
    def _period(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise ValidationError({"date_to": ["The period ends before it begins."]})


class CallStateTexts(SettingsSchema):
    """What a closing screen says about the call, one line at a time, as its live state changes
    (the runtime's ``callProgress``; docs/site-script.md): the widget's closing screen and the lead
    generator's timer share them."""

    state_waiting = words("Готовим звонок…", 100, "State: waiting")
    state_calling = words("Звоним оператору, затем вам — держите телефон рядом", 150, "State: calling")
    state_calling_operator = words(
        "Звоним оператору — сейчас он узнает о вашей заявке", 150, "State: calling the operator"
    )
    state_calling_client = words("Звоним вам — возьмите трубку!", 150, "State: calling you")
    state_successful = words("Разговор состоялся. Спасибо!", 100, "State: successful")
    state_failed = words("Не удалось дозвониться — мы попробуем ещё раз", 150, "State: failed")
    state_gave_up = words(
        "Дозвониться не получилось. Оставьте номер ещё раз, когда вам будет удобно", 150, "State: no more attempts"
    )
    state_notified = words("Заявка передана менеджеру — он свяжется с вами", 150, "State: passed on by e-mail")
    state_duplicate = words(
        "Вы уже оставили заявку с этим номером — мы вам перезвоним", 150, "State: already requested"
    )
