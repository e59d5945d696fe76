"""The mobile lead generators' per-connection settings (docs/mobileleadgen.md): up to 100 promotions
for phones, each with the desktop lead generator's conditions and trigger and three screens (cover,
form, timer) in a working-hours and an off-hours variant, drawn as a bottom sheet.

Modelled on the lead generator's schema (plugins/leadgen/schemas.py) but its own, built from the
blocks every app shares through ``perezvon.api`` (a colour, a web address, a URL/UTM condition, the
call-state lines). The phone layout needs fewer settings than the desktop one (no side curtains,
no hover colours), and a sheet of its own."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from perezvon.api import (
    CHANNELS,
    CallStateTexts,
    Color,
    SettingsSchema,
    UrlUtmCondition,
    WebUrl,
    day,
    label,
    nested,
    words,
)

MAX_GENERATORS = 100
#: at most five lead generators per session, whatever the settings -- counted together with the
#: desktop lead generator's (both mark the session under the "leadgen:" prefix)
MAX_PER_SESSION = 5
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


class SheetSchema(SettingsSchema):
    """The bottom sheet itself: what dims the page, its corners and its grab handle."""

    overlay = Color("rgba(2, 6, 23, 0.55)", metadata=label("Page overlay"))
    radius = fields.Integer(
        load_default=20, validate=validate.Range(min=0, max=40), metadata=label("Corner radius, px")
    )
    handle_color = Color("rgba(255, 255, 255, 0.6)", metadata=label("Handle colour"))


class CoverSchema(SettingsSchema):
    background = Color("#0f172a", metadata=label("Background"))
    background_image = WebUrl(load_default="", metadata=label("Background image"))
    close_color = Color("#e2e8f0", metadata=label("Close button"))
    text1 = words("Скидка 10% на первый заказ", 200, "Text 1 (headline)")
    text1_color = Color("#facc15", metadata=label("Text 1 colour"))
    text1_size = fields.Integer(
        load_default=30, validate=validate.Range(min=12, max=56), metadata=label("Text 1 size, px")
    )
    text2 = words("Только сегодня: оставьте номер — закрепим скидку за вами.", 300, "Text 2")
    text2_color = Color("#f1f5f9", metadata=label("Text 2 colour"))
    cta_text = words("Получить скидку", 60, "Cover button")


class CallSchema(SettingsSchema):
    """The form screen: it replaces the cover after a delay, or when the visitor taps the cover."""

    form_on = fields.String(
        load_default="tap", validate=validate.OneOf(["tap", "time"]), metadata=label("The form opens on")
    )
    form_delay_seconds = fields.Float(
        load_default=3, validate=validate.Range(min=0, max=60), metadata=label("After, s (on time)")
    )
    info_text = words("Перезвоним за [TIMER_TIME] секунд и расскажем об условиях", 300, "Text above the form")
    info_background = Color("#f97316", metadata=label("Text background"))
    info_text_color = Color("#ffffff", metadata=label("Text colour"))
    form_background = Color("#ffffff", metadata=label("Form background"))
    form_title = words("Закрепить скидку", 150, "Form title")
    form_text_color = Color("#0f172a", metadata=label("Form text colour"))
    name_field = fields.String(
        load_default="hidden", validate=validate.OneOf(["hidden", "optional", "required"]), metadata=label("Name field")
    )
    name_placeholder = words("Ваше имя", 100, "Name placeholder")
    phone_placeholder = words("+7 (___) ___-__-__", 100, "Phone placeholder")
    phone_mask = fields.String(
        load_default="+7 (999) 999-99-99",
        validate=validate.Regexp(r"^[0-9+() \-]*9[0-9+() \-]*$", error="A mask with 9 for each digit."),
        metadata=label("Phone mask"),
    )
    button_text = words("Получить скидку", 60, "Button")
    button_from = Color("#f97316", metadata=label("Button gradient from"))
    button_to = Color("#c2410c", metadata=label("Button gradient to"))
    button_text_color = Color("#ffffff", metadata=label("Button text colour"))
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1].", 500, "Disclaimer", help="[LINK1], [LINK2]")
    link1_text = words("условия обработки персональных данных", 100, "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Link 1 address"))
    link2_text = words("", 100, "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Link 2 address"))
    day_label = words("День", 60, "Day label")
    time_label = words("Время", 60, "Time label")


class TimerSchema(SettingsSchema):
    """The screen after the number is left. Off hours it shows the chosen time."""

    background = Color("#0f172a", metadata=label("Background"))
    text_color = Color("#f8fafc", metadata=label("Text colour"))
    accent_color = Color("#facc15", metadata=label("Timer colour"))
    title = words("Скидка закреплена!", 150, "Title")
    text = words("Оператор позвонит через [LIVE_TIMER]", 300, "Text", help="[LIVE_TIMER], [TIMER_TIME]")


class LiveTimerSchema(CallStateTexts, TimerSchema):
    """In working hours the timer follows the call (the runtime's ``callProgress``), one line at a time."""


class ScreensSchema(SettingsSchema):
    cover = nested(CoverSchema, "Cover")
    call = nested(CallSchema, "Form")
    timer = nested(TimerSchema, "Timer")


class WorkingScreensSchema(ScreensSchema):
    timer = nested(LiveTimerSchema, "Timer")


OFFHOURS = {
    "cover": {"text2": "Мы сейчас отдыхаем, но скидку можно закрепить уже сейчас."},
    "call": {
        "info_text": "Выберите удобное время — перезвоним и расскажем об условиях",
        "button_text": "Перезвоните мне",
    },
    "timer": {"title": "Скидка закреплена!", "text": "Перезвоним в выбранное время:"},
}


class TriggerSchema(SettingsSchema):
    """``exit`` on a phone: a quick scroll back up towards the address bar (there is no mouse to leave)."""

    kind = fields.String(
        load_default="scroll", validate=validate.OneOf(["time", "exit", "scroll"]), metadata=label("Trigger")
    )
    time_seconds = fields.Integer(
        load_default=20, validate=validate.Range(min=0, max=3600), metadata=label("By time, s")
    )
    exit_after_seconds = fields.Integer(
        load_default=5, validate=validate.Range(min=0, max=3600), metadata=label("Exit: not before, s")
    )
    scroll_percent = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=100), metadata=label("By scroll, %")
    )
    activation_delay_seconds = fields.Integer(
        load_default=3, validate=validate.Range(min=0, max=3600), metadata=label("Scroll counts only after, s")
    )


class GeneratorSchema(SettingsSchema):
    id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="Latin letters, digits, - and _."),
        metadata=label("Id"),
    )
    name = words("Акция", 200, "Name")
    enabled = fields.Boolean(load_default=True, metadata=label("On"))
    active_from = day("From")
    active_to = day("To")
    renew = fields.Boolean(
        load_default=True,
        metadata=label("Renew automatically", help="when the period ends it starts again, same length"),
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        load_default=lambda: list(CHANNELS),
        metadata=label("Channels"),
    )
    filters = fields.List(
        fields.Nested(UrlUtmCondition),
        load_default=list,
        validate=validate.Length(max=50),
        metadata=label("URL and UTM filters (all must match)"),
    )
    trigger = nested(TriggerSchema, "Trigger")
    font_family = words(FONT, 200, "Font")
    sheet = nested(SheetSchema, "Sheet")
    working = nested(WorkingScreensSchema, "Working hours")
    offhours = nested(ScreensSchema, "Off hours", **OFFHOURS)

    @validates_schema
    def _period(self, data, **_):
        if data.get("active_from") and data.get("active_to") and data["active_to"] < data["active_from"]:
            raise ValidationError({"active_to": ["The period ends before it begins."]})
        if data.get("renew") and data.get("active_to") and not data.get("active_from"):
            raise ValidationError({"active_from": ["A renewed period needs its first day."]})


class MobileLeadgenSettings(SettingsSchema):
    generators = fields.List(
        fields.Nested(GeneratorSchema),
        load_default=list,
        validate=validate.Length(max=MAX_GENERATORS),
        metadata=label("Lead generators"),
    )

    @validates_schema
    def _unique_ids(self, data, **_):
        ids = [g["id"] for g in data.get("generators", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError({"generators": ["Each lead generator needs its own id."]})
