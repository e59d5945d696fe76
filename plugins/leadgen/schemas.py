"""Lead generators' per-connection settings (docs/site-script.md#the-lead-generator): up to 100 promotional
pop-ups, each with its conditions, trigger and three screens in a working-hours
and an off-hours variant. Defaults make a finished-looking promotion."""

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
#: at most five lead generators per session, whatever the settings
MAX_PER_SESSION = 5
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


class CoverSchema(SettingsSchema):
    background = Color("#0f172a", metadata=label("Background"))
    background_image = WebUrl(load_default="", metadata=label("Background image"))
    close_color = Color("#e2e8f0", metadata=label("Close button"))
    text1 = words("Скидка 10% на первый заказ", 200, "Text 1 (headline)")
    text1_color = Color("#facc15", metadata=label("Text 1 colour"))
    text1_size = fields.Integer(
        load_default=40, validate=validate.Range(min=12, max=80), metadata=label("Text 1 size, px")
    )
    text2 = words("Только сегодня: оставьте номер — закрепим скидку за вами.", 300, "Text 2")
    text2_color = Color("#f1f5f9", metadata=label("Text 2 colour"))


class CallSchema(SettingsSchema):
    """Two curtains slide over the cover: one with the form, one with text and an image."""

    curtain_on = fields.String(
        load_default="time", validate=validate.OneOf(["time", "hover"]), metadata=label("Curtains slide in on")
    )
    curtain_delay_seconds = fields.Float(
        load_default=2.5, validate=validate.Range(min=0, max=60), metadata=label("After, s (on time)")
    )
    form_background = Color("#ffffff", metadata=label("Form curtain background"))
    form_title = words("Закрепить скидку", 150, "Form curtain title")
    form_text_color = Color("#0f172a", metadata=label("Form curtain text colour"))
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
    button_hover_from = Color("#ea580c", metadata=label("Button hover from"))
    button_hover_to = Color("#9a3412", metadata=label("Button hover to"))
    button_text_color = Color("#ffffff", metadata=label("Button text colour"))
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1].", 500, "Disclaimer", help="[LINK1], [LINK2]")
    link1_text = words("условия обработки персональных данных", 100, "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Link 1 address"))
    link2_text = words("", 100, "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Link 2 address"))
    info_background = Color("#f97316", metadata=label("Text curtain background"))
    info_text = words("Перезвоним за [TIMER_TIME] секунд и расскажем об условиях", 300, "Text curtain text")
    info_text_color = Color("#ffffff", metadata=label("Text curtain colour"))
    info_image = WebUrl(load_default="", metadata=label("Text curtain image"))
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
    """In working hours the timer follows the call as the widget's closing screen does: the
    countdown while nobody is rung yet, then the call's live state one line at a time. (Only
    here: the off-hours variant has no call to follow, and every line counts 100 times over in
    the config of a connection with 100 generators.)"""


class ScreensSchema(SettingsSchema):
    cover = nested(CoverSchema, "Cover")
    call = nested(CallSchema, "Call")
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
    working = nested(WorkingScreensSchema, "Working hours")
    offhours = fields.Nested(
        ScreensSchema, load_default=lambda: ScreensSchema().load(OFFHOURS), metadata=label("Off hours")
    )

    @validates_schema
    def _period(self, data, **_):
        if data.get("active_from") and data.get("active_to") and data["active_to"] < data["active_from"]:
            raise ValidationError({"active_to": ["The period ends before it begins."]})
        if data.get("renew") and data.get("active_to") and not data.get("active_from"):
            raise ValidationError({"active_from": ["A renewed period needs its first day."]})


class LeadgenSettings(SettingsSchema):
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
