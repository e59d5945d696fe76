"""The mobile panel's per-connection settings (docs/mobilepanel.md). The defaults are a finished bar
of four buttons, so a site looks right on phones before anyone edits anything; a button with nothing
to show (no number, no address, no messenger) stays hidden on its own."""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate

from perezvon.api import CHANNELS, CallStateTexts, Color, SettingsSchema, UrlUtmCondition, WebUrl, label, nested, words

BUTTONS = ("call", "callback", "route", "messengers")
MESSENGERS = ("telegram", "whatsapp", "vk", "viber")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"

_PHONE = re.compile(r"^\+?[0-9 ()\-]{5,24}$")
_TELEGRAM = re.compile(r"^(?:https?://)?(?:t\.me|telegram\.me)/([A-Za-z0-9_]{5,32})/?$|^@?([A-Za-z0-9_]{5,32})$")
_WHATSAPP = re.compile(r"^(?:https?://)?wa\.me/(\d{7,15})/?$")
_VK = re.compile(r"^(?:https?://)?(?:m\.)?vk\.(?:com|ru)/([A-Za-z0-9_.]{2,64})/?$|^([A-Za-z0-9_.]{2,64})$")


def digits_of(text: str) -> str:
    """A phone number's digits, a Russian 8 (495) … read as 7 (495) …."""
    digits = re.sub(r"\D", "", text)
    return "7" + digits[1:] if len(digits) == 11 and digits[0] == "8" else digits


class Phone(fields.String):
    """A phone number (digits, spaces, + ( ) -) or empty."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text and (not _PHONE.match(text) or not 7 <= len(digits_of(text)) <= 15):
            raise ValidationError("A phone number: 7 to 15 digits.")
        return text


class Messenger(fields.String):
    """A messenger's contact, checked and kept as its https link (Viber: the number's digits)."""

    def __init__(self, kind: str, text: str, help: str):
        super().__init__(load_default="", validate=validate.Length(max=200), metadata=label(text, help=help))
        self.kind = kind

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            return ""
        if self.kind == "telegram" and (m := _TELEGRAM.match(text)):
            return "https://t.me/" + (m.group(1) or m.group(2))
        if self.kind == "vk" and (m := _VK.match(text)):
            return "https://vk.com/" + (m.group(1) or m.group(2))
        if self.kind == "whatsapp" and (m := _WHATSAPP.match(text)):
            return "https://wa.me/" + m.group(1)
        if self.kind in ("whatsapp", "viber") and _PHONE.match(text) and 7 <= len(digits_of(text)) <= 15:
            return ("https://wa.me/" if self.kind == "whatsapp" else "+") + digits_of(text)
        raise ValidationError(
            {
                "telegram": "A Telegram username (@name) or a t.me link.",
                "vk": "A VK page name or a vk.com link.",
                "whatsapp": "A phone number or a wa.me link.",
                "viber": "A phone number.",
            }[self.kind]
        )


def position(default: int):
    return fields.Integer(
        load_default=default, validate=validate.Range(min=1, max=len(BUTTONS)), metadata=label("Order (1 = left)")
    )


class BarSchema(SettingsSchema):
    """The bar itself: where it sits and how it looks."""

    background = Color("#ffffff", metadata=label("Bar background"))
    border_color = Color("#e2e8f0", metadata=label("Bar border"))
    font_family = words(FONT, 200, "Font")
    bottom_offset = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=400),
        metadata=label("Bottom offset, px", help="lifts the bar above the site's own bottom bar or cookie banner"),
    )
    show_labels = fields.Boolean(load_default=True, metadata=label("Show button labels"))


def button_fields(number: int, text: str, background: str):
    return {
        "enabled": fields.Boolean(load_default=True, metadata=label("Show the button")),
        "position": position(number),
        "label": words(text, 30, "Label"),
        "background": Color(background, metadata=label("Button colour")),
        "text_color": Color("#ffffff", metadata=label("Label colour")),
    }


class CallButtonSchema(SettingsSchema.from_dict(button_fields(1, "Позвонить", "#16a34a"))):  # type: ignore[misc]
    phone = Phone(
        load_default="",
        metadata=label("Phone number", help="used when the office's CSS selector finds no number on the page"),
    )


class CallbackButtonSchema(SettingsSchema.from_dict(button_fields(2, "Перезвоните", "#2563eb")), CallStateTexts):  # type: ignore[misc]
    title = words("Перезвоним за [TIMER_TIME] секунд", 200, "Form title")
    phone_placeholder = words("+7 (___) ___-__-__", 100, "Phone placeholder")
    phone_mask = fields.String(
        load_default="+7 (999) 999-99-99",
        validate=[
            validate.Length(min=4, max=40),
            validate.Regexp(r"^[0-9+() \-]*9[0-9+() \-]*$", error="A mask with 9 for each digit."),
        ],
        metadata=label("Phone mask (9 = digit)"),
    )
    button_text = words("Жду звонка!", 60, "Form button")
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    consent_checked = fields.Boolean(load_default=True, metadata=label("Checked by default"))
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1].", 500, "Disclaimer", help="[LINK1]")
    link1_text = words("политику конфиденциальности", 100, "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Link 1 address"))
    thanks = words("Спасибо! Оператор позвонит через [LIVE_TIMER]", 200, "After sending")


class RouteButtonSchema(SettingsSchema.from_dict(button_fields(3, "Маршрут", "#f59e0b"))):  # type: ignore[misc]
    list_title = words("Выберите офис", 100, "Office list title")


class MessengersButtonSchema(SettingsSchema.from_dict(button_fields(4, "Написать", "#7c3aed"))):  # type: ignore[misc]
    list_title = words("Напишите нам", 100, "Messenger list title")
    telegram = Messenger("telegram", "Telegram", "@username or https://t.me/username")
    whatsapp = Messenger("whatsapp", "WhatsApp", "+7 912 345-67-89 or https://wa.me/79123456789")
    vk = Messenger("vk", "VK", "page name or https://vk.com/name")
    viber = Messenger("viber", "Viber", "+7 912 345-67-89")


class ChannelShowSchema(SettingsSchema):
    show = fields.Boolean(load_default=True, metadata=label("Show"))


class ChannelsSchema(SettingsSchema):
    direct = nested(ChannelShowSchema, "Direct")
    organic = nested(ChannelShowSchema, "Organic search")
    ads = nested(ChannelShowSchema, "Ads")
    referral = nested(ChannelShowSchema, "Referral")
    social = nested(ChannelShowSchema, "Social")


class RuleSchema(UrlUtmCondition):
    """A URL or UTM rule: the heaviest that matches says whether the bar shows."""

    show = fields.Boolean(load_default=True, metadata=label("Show (no = never)"))


class MobilePanelSettings(SettingsSchema):
    bar = nested(BarSchema, "Bar")
    call = nested(CallButtonSchema, "Call button")
    callback = nested(CallbackButtonSchema, "Callback button")
    route = nested(RouteButtonSchema, "Route button")
    messengers = nested(MessengersButtonSchema, "Messengers button")
    channels = nested(ChannelsSchema, "Channel rules")
    rules = fields.List(
        fields.Nested(RuleSchema),
        load_default=list,
        validate=validate.Length(max=200),
        metadata=label("URL and UTM rules"),
    )


assert set(CHANNELS) == set(ChannelsSchema().fields)
