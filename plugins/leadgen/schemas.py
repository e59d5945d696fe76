"""Lead generators' per-connection settings (docs/site-script.md#the-lead-generator): up to 100 promotional
pop-ups, each with its conditions, trigger and three screens in a working-hours
and an off-hours variant. Defaults make a finished-looking promotion."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema
from perezvon.plugins.widget.rules import CHANNELS, Color, ConditionFields, Strict, WebUrl, label, nested, words

MAX_GENERATORS = 100
#: at most five lead generators per session, whatever the settings
MAX_PER_SESSION = 5
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


class CoverSchema(Strict):
    background = Color("#0f172a", metadata=label("Фон", "Background"))
    background_image = WebUrl(load_default="", metadata=label("Фоновое изображение", "Background image"))
    close_color = Color("#e2e8f0", metadata=label("Кнопка «закрыть»", "Close button"))
    text1 = words("Скидка 10% на первый заказ", 200, "Текст 1 (заголовок)", "Text 1 (headline)")
    text1_color = Color("#facc15", metadata=label("Цвет текста 1", "Text 1 colour"))
    text1_size = fields.Integer(load_default=40, validate=validate.Range(min=12, max=80),
                                metadata=label("Размер текста 1, px", "Text 1 size, px"))
    text2 = words("Только сегодня: оставьте номер — закрепим скидку за вами.", 300, "Текст 2", "Text 2")
    text2_color = Color("#f1f5f9", metadata=label("Цвет текста 2", "Text 2 colour"))


class CallSchema(Strict):
    """Two curtains slide over the cover: one with the form, one with text and an image."""

    curtain_on = fields.String(load_default="time", validate=validate.OneOf(["time", "hover"]),
                               metadata=label("Шторки выезжают", "Curtains slide in on"))
    curtain_delay_seconds = fields.Float(load_default=2.5, validate=validate.Range(min=0, max=60),
                                         metadata=label("Через, с (по времени)", "After, s (on time)"))
    form_background = Color("#ffffff", metadata=label("Шторка с формой: фон", "Form curtain background"))
    form_title = words("Закрепить скидку", 150, "Шторка с формой: заголовок", "Form curtain title")
    form_text_color = Color("#0f172a", metadata=label("Шторка с формой: текст", "Form curtain text colour"))
    name_field = fields.String(load_default="hidden", validate=validate.OneOf(["hidden", "optional", "required"]),
                               metadata=label("Поле «имя»", "Name field"))
    name_placeholder = words("Ваше имя", 100, "Подсказка в поле имени", "Name placeholder")
    phone_placeholder = words("+7 (___) ___-__-__", 100, "Подсказка в поле телефона", "Phone placeholder")
    phone_mask = fields.String(load_default="+7 (999) 999-99-99", validate=validate.Regexp(
        r"^[0-9+() \-]*9[0-9+() \-]*$", error="A mask with 9 for each digit."),
        metadata=label("Маска телефона", "Phone mask"))
    button_text = words("Получить скидку", 60, "Кнопка", "Button")
    button_from = Color("#f97316", metadata=label("Кнопка: градиент от", "Button gradient from"))
    button_to = Color("#c2410c", metadata=label("Кнопка: градиент до", "Button gradient to"))
    button_hover_from = Color("#ea580c", metadata=label("Кнопка при наведении: от", "Button hover from"))
    button_hover_to = Color("#9a3412", metadata=label("Кнопка при наведении: до", "Button hover to"))
    button_text_color = Color("#ffffff", metadata=label("Текст кнопки", "Button text colour"))
    consent_text = words("Согласен на обработку персональных данных", 300, "Согласие", "Consent")
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1].", 500, "Дисклеймер", "Disclaimer",
                       help="[LINK1], [LINK2]")
    link1_text = words("условия обработки персональных данных", 100, "Ссылка 1: текст", "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Ссылка 1: адрес", "Link 1 address"))
    link2_text = words("", 100, "Ссылка 2: текст", "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Ссылка 2: адрес", "Link 2 address"))
    info_background = Color("#f97316", metadata=label("Шторка с текстом: фон", "Text curtain background"))
    info_text = words("Перезвоним за [TIMER_TIME] секунд и расскажем об условиях", 300,
                      "Шторка с текстом: текст", "Text curtain text")
    info_text_color = Color("#ffffff", metadata=label("Шторка с текстом: цвет", "Text curtain colour"))
    info_image = WebUrl(load_default="", metadata=label("Шторка с текстом: изображение", "Text curtain image"))
    day_label = words("День", 60, "Подпись «день»", "Day label")
    time_label = words("Время", 60, "Подпись «время»", "Time label")


class TimerSchema(Strict):
    background = Color("#0f172a", metadata=label("Фон", "Background"))
    text_color = Color("#f8fafc", metadata=label("Цвет текста", "Text colour"))
    accent_color = Color("#facc15", metadata=label("Цвет таймера", "Timer colour"))
    title = words("Скидка закреплена!", 150, "Заголовок", "Title")
    text = words("Оператор позвонит через [LIVE_TIMER]", 300, "Текст", "Text", help="[LIVE_TIMER], [TIMER_TIME]")


class ScreensSchema(Strict):
    cover = nested(CoverSchema, "Обложка", "Cover")
    call = nested(CallSchema, "Звонок", "Call")
    timer = nested(TimerSchema, "Таймер", "Timer")


OFFHOURS = {
    "cover": {"text2": "Мы сейчас отдыхаем, но скидку можно закрепить уже сейчас."},
    "call": {"info_text": "Выберите удобное время — перезвоним и расскажем об условиях",
             "button_text": "Перезвоните мне"},
    "timer": {"title": "Скидка закреплена!", "text": "Перезвоним в выбранное время:"},
}


class TriggerSchema(Strict):
    kind = fields.String(load_default="scroll", validate=validate.OneOf(["time", "exit", "scroll"]),
                         metadata=label("Триггер", "Trigger"))
    time_seconds = fields.Integer(load_default=20, validate=validate.Range(min=0, max=3600),
                                  metadata=label("По времени, с", "By time, s"))
    exit_after_seconds = fields.Integer(load_default=5, validate=validate.Range(min=0, max=3600),
                                        metadata=label("Уход: не раньше чем через, с", "Exit: not before, s"))
    scroll_percent = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100),
                                    metadata=label("По прокрутке, %", "By scroll, %"))
    activation_delay_seconds = fields.Integer(load_default=3, validate=validate.Range(min=0, max=3600), metadata=label(
        "Прокрутка считается не раньше чем через, с", "Scroll counts only after, s"))


class GeneratorSchema(Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$",
                                                               error="Latin letters, digits, - and _."),
                       metadata=label("Код", "Id"))
    name = words("Акция", 200, "Название", "Name")
    enabled = fields.Boolean(load_default=True, metadata=label("Включён", "On"))
    active_from = ConditionFields._declared_fields["date_from"]
    active_to = ConditionFields._declared_fields["date_to"]
    renew = fields.Boolean(load_default=True, metadata=label(
        "Продлевать автоматически", "Renew automatically", help="when the period ends it starts again, same length"))
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), load_default=lambda: list(CHANNELS),
                           metadata=label("Каналы", "Channels"))
    filters = fields.List(fields.Nested(ConditionFields), load_default=list, validate=validate.Length(max=50),
                          metadata=label("Фильтры URL и UTM (все должны совпасть)", "URL and UTM filters (all must match)"))
    trigger = nested(TriggerSchema, "Триггер", "Trigger")
    font_family = words(FONT, 200, "Шрифт", "Font")
    working = nested(ScreensSchema, "Рабочее время", "Working hours")
    offhours = fields.Nested(ScreensSchema, load_default=lambda: ScreensSchema().load(OFFHOURS),
                             metadata=label("Нерабочее время", "Off hours"))

    @validates_schema
    def _period(self, data, **_):
        if data.get("active_from") and data.get("active_to") and data["active_to"] < data["active_from"]:
            raise ValidationError({"active_to": ["The period ends before it begins."]})
        if data.get("renew") and data.get("active_to") and not data.get("active_from"):
            raise ValidationError({"active_from": ["A renewed period needs its first day."]})


class LeadgenSettings(Strict):
    generators = fields.List(fields.Nested(GeneratorSchema), load_default=list,
                             validate=validate.Length(max=MAX_GENERATORS),
                             metadata=label("Генераторы лидов", "Lead generators"))

    @validates_schema
    def _unique_ids(self, data, **_):
        ids = [g["id"] for g in data.get("generators", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError({"generators": ["Each lead generator needs its own id."]})
