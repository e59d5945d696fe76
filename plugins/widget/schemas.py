"""The widget's per-connection settings (docs/site-script.md#the-widget). The defaults are a finished,
good-looking callback form, so a site looks right before anyone edits anything."""
from __future__ import annotations

from marshmallow import fields, validate
from perezvon.plugins.widget.rules import (
    CHANNELS,
    FORMATS,
    Color,
    ConditionFields,
    Strict,
    ThresholdsSchema,
    WebUrl,
    label,
    nested,
    words,
)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
NAME_FIELD = ("hidden", "optional", "required")


class LookSchema(Strict):
    """How the form looks: every element styled on its own."""

    format = fields.String(load_default="square", validate=validate.OneOf(FORMATS), metadata=label(
        "Формат", "Format", help="horizontal 800×400, square 600×600, vertical 340×600, edge 340×800"))
    font_family = words(FONT, 200, "Шрифт", "Font")
    padding = fields.Integer(load_default=36, validate=validate.Range(min=0, max=120),
                             metadata=label("Отступы, px", "Margins, px"))
    radius = fields.Integer(load_default=18, validate=validate.Range(min=0, max=60),
                            metadata=label("Скругление, px", "Corner radius, px"))
    background = Color("#ffffff", metadata=label("Фон", "Background"))
    background_image = WebUrl(load_default="", metadata=label("Фоновое изображение", "Background image"))
    overlay = Color("rgba(15, 23, 42, 0.55)", metadata=label("Затемнение страницы", "Page overlay"))
    close_color = Color("#64748b", metadata=label("Кнопка «закрыть»", "Close button"))
    title = words("Перезвоним за [TIMER_TIME] секунд!", 300, "Заголовок", "Title", help="[TIMER_TIME], [LIVE_TIMER]")
    title_color = Color("#0f172a", metadata=label("Цвет заголовка", "Title colour"))
    title_size = fields.Integer(load_default=28, validate=validate.Range(min=12, max=56),
                                metadata=label("Размер заголовка, px", "Title size, px"))
    text = words("Оставьте номер — оператор позвонит вам бесплатно и ответит на вопросы.", 500, "Текст", "Text")
    text_color = Color("#334155", metadata=label("Цвет текста", "Text colour"))
    field_background = Color("#f8fafc", metadata=label("Фон полей", "Field background"))
    field_border = Color("#cbd5e1", metadata=label("Рамка полей", "Field border"))
    field_text_color = Color("#0f172a", metadata=label("Текст полей", "Field text"))
    select_background = Color(None, metadata=label("Фон списков (офис, отдел, время)", "Drop-down background",
                                                   help="empty: as the fields"))
    select_border = Color(None, metadata=label("Рамка списков", "Drop-down border", help="empty: as the fields"))
    select_text_color = Color(None, metadata=label("Текст списков", "Drop-down text", help="empty: as the fields"))
    name_field = fields.String(load_default="optional", validate=validate.OneOf(NAME_FIELD),
                               metadata=label("Поле «имя»", "Name field"))
    name_placeholder = words("Ваше имя", 100, "Подсказка в поле имени", "Name placeholder")
    phone_placeholder = words("+7 (___) ___-__-__", 100, "Подсказка в поле телефона", "Phone placeholder")
    phone_mask = fields.String(load_default="+7 (999) 999-99-99", validate=[
        validate.Length(min=4, max=40), validate.Regexp(r"^[0-9+() \-]*9[0-9+() \-]*$",
                                                        error="A mask with 9 for each digit.")],
        metadata=label("Маска телефона (9 — цифра)", "Phone mask (9 = digit)"))
    time_link = words("или выберите <удобное время> для звонка", 200, "Ссылка «удобное время»",
                     "Convenient-time link")
    link_color = Color("#2563eb", metadata=label("Цвет ссылок", "Link colour"))
    button_text = words("Жду звонка!", 60, "Текст кнопки", "Button text")
    button_from = Color("#22c55e", metadata=label("Кнопка: градиент от", "Button gradient from"))
    button_to = Color("#15803d", metadata=label("Кнопка: градиент до", "Button gradient to"))
    button_hover_from = Color("#16a34a", metadata=label("Кнопка при наведении: от", "Button hover from"))
    button_hover_to = Color("#166534", metadata=label("Кнопка при наведении: до", "Button hover to"))
    button_text_color = Color("#ffffff", metadata=label("Текст кнопки", "Button text colour"))
    consent_text = words("Согласен на обработку персональных данных", 300, "Согласие", "Consent")
    consent_checked = fields.Boolean(load_default=True, metadata=label("Галочка стоит сразу", "Checked by default"))
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1] и [LINK2].", 500, "Дисклеймер", "Disclaimer",
                      help="[LINK1], [LINK2]")
    link1_text = words("политику конфиденциальности", 100, "Ссылка 1: текст", "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Ссылка 1: адрес", "Link 1 address"))
    link2_text = words("согласие на обработку данных (152-ФЗ)", 100, "Ссылка 2: текст", "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Ссылка 2: адрес", "Link 2 address"))
    disclaimer_color = Color("#94a3b8", metadata=label("Цвет дисклеймера", "Disclaimer colour"))


def partial_look(**defaults):
    """A look that only overrides some elements of the main one."""
    return fields.Nested(LookSchema(partial=True), load_default=lambda: dict(defaults), allow_none=True)


def partial_thresholds():
    return fields.Nested(ThresholdsSchema(partial=True), load_default=None, allow_none=True)


class TriggerLooksSchema(Strict):
    """A look per trigger, over the main one."""

    time = partial_look()
    exit = partial_look(title="Уже уходите? Перезвоним за [TIMER_TIME] секунд",
                        text="Оставьте номер — расскажем о скидках, пока вы не ушли.")
    scroll = partial_look()
    hash = partial_look()
    button = partial_look()


class ChannelRuleSchema(Strict):
    show = fields.Boolean(load_default=True, metadata=label("Показывать", "Show"))
    format = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(FORMATS),
                           metadata=label("Формат", "Format"))
    thresholds = partial_thresholds()
    offhours_thresholds = partial_thresholds()


class ChannelsSchema(Strict):
    direct = nested(ChannelRuleSchema, "Прямые заходы", "Direct")
    organic = nested(ChannelRuleSchema, "Поиск", "Organic search")
    ads = nested(ChannelRuleSchema, "Реклама", "Ads")
    referral = nested(ChannelRuleSchema, "Ссылки с сайтов", "Referral")
    social = nested(ChannelRuleSchema, "Соцсети", "Social")


class RuleSchema(ConditionFields):
    """A URL or UTM rule: when it matches (highest weight wins) it changes the widget."""

    show = fields.Boolean(load_default=True, metadata=label("Показывать (нет — не показывать)", "Show (no = never)"))
    format = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(FORMATS),
                           metadata=label("Формат", "Format"))
    thresholds = partial_thresholds()
    offhours_thresholds = partial_thresholds()
    look = partial_look()


class HashSchema(Strict):
    """A link <a href="#NAME"> on the site opens the widget configured for NAME."""

    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$",
                                                                 error="Latin letters, digits, - and _."),
                         metadata=label("Имя (#имя в ссылке)", "Name (#name in the link)"))
    format = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(FORMATS),
                           metadata=label("Формат", "Format"))
    look = partial_look()


class TimeScreenSchema(Strict):
    title = words("Когда вам удобно поговорить?", 200, "Заголовок", "Title")
    day_label = words("День", 60, "Подпись «день»", "Day label")
    time_label = words("Время", 60, "Подпись «время»", "Time label")
    button_text = words("Перезвоните мне", 60, "Кнопка", "Button")
    back_text = words("Назад", 60, "Назад", "Back")


class ClosingSchema(Strict):
    """The screens after the number is left ([LIVE_TIMER] counts down)."""

    working_title = words("Спасибо! Уже звоним", 200, "Заголовок (рабочее время)", "Title (working hours)")
    working_text = words("Оператор позвонит вам через [LIVE_TIMER]", 300, "Текст (рабочее время)",
                        "Text (working hours)")
    offhours_title = words("Спасибо! Заявка принята", 200, "Заголовок (нерабочее время)", "Title (off hours)")
    offhours_text = words("Мы перезвоним вам в выбранное время:", 300, "Текст (нерабочее время)", "Text (off hours)")
    state_waiting = words("Готовим звонок…", 100, "Состояние: ожидание", "State: waiting")
    state_calling = words("Звоним оператору, затем вам — держите телефон рядом", 150, "Состояние: звоним",
                         "State: calling")
    state_calling_operator = words("Звоним оператору — сейчас он узнает о вашей заявке", 150,
                                   "Состояние: звоним оператору", "State: calling the operator")
    state_calling_client = words("Звоним вам — возьмите трубку!", 150, "Состояние: звоним вам",
                                 "State: calling you")
    state_successful = words("Разговор состоялся. Спасибо!", 100, "Состояние: успешно", "State: successful")
    state_failed = words("Не удалось дозвониться — мы попробуем ещё раз", 150, "Состояние: не удалось",
                        "State: failed")


class LauncherSchema(Strict):
    """A round call button in the corner that opens the widget at any time."""

    show = fields.Boolean(load_default=True, metadata=label("Показывать кнопку", "Show the button"))
    position = fields.String(load_default="right", validate=validate.OneOf(["left", "right"]),
                             metadata=label("Сторона", "Side"))
    color = Color("#22c55e", metadata=label("Цвет", "Colour"))
    label_text = words("Заказать обратный звонок", 100, "Подпись для экранных дикторов", "Screen-reader label")


class WidgetSettings(Strict):
    look = nested(LookSchema, "Оформление", "Look")
    thresholds = nested(ThresholdsSchema, "Триггеры (рабочее время)", "Triggers (working hours)")
    offhours_thresholds = nested(ThresholdsSchema, "Триггеры (нерабочее время)", "Triggers (off hours)",
                                 time_seconds=60)
    trigger_looks = nested(TriggerLooksSchema, "Оформление по триггерам", "Look per trigger")
    offhours_look = partial_look(
        title="Сейчас мы отдыхаем, но перезвоним, когда вам удобно",
        text="Выберите день и время — оператор позвонит точно в срок.",
        button_text="Перезвоните мне", time_link="")
    time_screen = nested(TimeScreenSchema, "Выбор времени", "Time choice")
    closing = nested(ClosingSchema, "Экраны после заявки", "Closing screens")
    launcher = nested(LauncherSchema, "Кнопка звонка", "Call button")
    channels = nested(ChannelsSchema, "Правила по каналам", "Channel rules")
    rules = fields.List(fields.Nested(RuleSchema), load_default=list, validate=validate.Length(max=200),
                        metadata=label("Правила по URL и UTM", "URL and UTM rules"))
    hashes = fields.List(fields.Nested(HashSchema), load_default=list, validate=validate.Length(max=50),
                         metadata=label("HASH-ссылки", "HASH links"))


assert set(CHANNELS) == set(ChannelsSchema().fields)
