"""The widget's per-connection settings (docs/site-script.md#the-widget). The defaults are a finished,
good-looking callback form, so a site looks right before anyone edits anything."""

from __future__ import annotations

from marshmallow import fields, validate

from perezvon.api import CHANNELS, CallStateTexts, Color, SettingsSchema, UrlUtmCondition, WebUrl, label, nested, words

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
NAME_FIELD = ("hidden", "optional", "required")


FORMATS = ("horizontal", "square", "vertical", "edge")


class ThresholdsSchema(SettingsSchema):
    """When the automatic triggers fire (0 or null switches one off)."""

    time_seconds = fields.Integer(
        load_default=40, allow_none=True, validate=validate.Range(min=0, max=3600), metadata=label("By time on page, s")
    )
    exit = fields.Boolean(load_default=True, metadata=label("On exit intent"))
    exit_after_seconds = fields.Integer(
        load_default=5, validate=validate.Range(min=0, max=3600), metadata=label("Exit: not before, s")
    )
    scroll_percent = fields.Integer(
        load_default=70,
        allow_none=True,
        validate=validate.Range(min=0, max=100),
        metadata=label("By scroll, % of page"),
    )


class LookSchema(SettingsSchema):
    """How the form looks: every element styled on its own."""

    format = fields.String(
        load_default="square",
        validate=validate.OneOf(FORMATS),
        metadata=label("Format", help="horizontal 800×400, square 600×600, vertical 340×600, edge 340×800"),
    )
    font_family = words(FONT, 200, "Font")
    padding = fields.Integer(load_default=36, validate=validate.Range(min=0, max=120), metadata=label("Margins, px"))
    radius = fields.Integer(
        load_default=18, validate=validate.Range(min=0, max=60), metadata=label("Corner radius, px")
    )
    background = Color("#ffffff", metadata=label("Background"))
    background_image = WebUrl(load_default="", metadata=label("Background image"))
    overlay = Color("rgba(15, 23, 42, 0.55)", metadata=label("Page overlay"))
    close_color = Color("#64748b", metadata=label("Close button"))
    title = words("Перезвоним за [TIMER_TIME] секунд!", 300, "Title", help="[TIMER_TIME], [LIVE_TIMER]")
    title_color = Color("#0f172a", metadata=label("Title colour"))
    title_size = fields.Integer(
        load_default=28, validate=validate.Range(min=12, max=56), metadata=label("Title size, px")
    )
    text = words("Оставьте номер — оператор позвонит вам бесплатно и ответит на вопросы.", 500, "Text")
    text_color = Color("#334155", metadata=label("Text colour"))
    field_background = Color("#f8fafc", metadata=label("Field background"))
    field_border = Color("#cbd5e1", metadata=label("Field border"))
    field_text_color = Color("#0f172a", metadata=label("Field text"))
    select_background = Color(None, metadata=label("Drop-down background", help="empty: as the fields"))
    select_border = Color(None, metadata=label("Drop-down border", help="empty: as the fields"))
    select_text_color = Color(None, metadata=label("Drop-down text", help="empty: as the fields"))
    name_field = fields.String(
        load_default="optional", validate=validate.OneOf(NAME_FIELD), metadata=label("Name field")
    )
    name_placeholder = words("Ваше имя", 100, "Name placeholder")
    phone_placeholder = words("+7 (___) ___-__-__", 100, "Phone placeholder")
    phone_mask = fields.String(
        load_default="+7 (999) 999-99-99",
        validate=[
            validate.Length(min=4, max=40),
            validate.Regexp(r"^[0-9+() \-]*9[0-9+() \-]*$", error="A mask with 9 for each digit."),
        ],
        metadata=label("Phone mask (9 = digit)"),
    )
    time_link = words("или выберите <удобное время> для звонка", 200, "Convenient-time link")
    link_color = Color("#2563eb", metadata=label("Link colour"))
    button_text = words("Жду звонка!", 60, "Button text")
    button_from = Color("#22c55e", metadata=label("Button gradient from"))
    button_to = Color("#15803d", metadata=label("Button gradient to"))
    button_hover_from = Color("#16a34a", metadata=label("Button hover from"))
    button_hover_to = Color("#166534", metadata=label("Button hover to"))
    button_text_color = Color("#ffffff", metadata=label("Button text colour"))
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    consent_checked = fields.Boolean(load_default=True, metadata=label("Checked by default"))
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1] и [LINK2].", 500, "Disclaimer", help="[LINK1], [LINK2]")
    link1_text = words("политику конфиденциальности", 100, "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Link 1 address"))
    link2_text = words("согласие на обработку данных (152-ФЗ)", 100, "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Link 2 address"))
    disclaimer_color = Color("#94a3b8", metadata=label("Disclaimer colour"))


def partial_look(**defaults):
    """A look that only overrides some elements of the main one."""
    return fields.Nested(LookSchema(partial=True), load_default=lambda: dict(defaults), allow_none=True)


def partial_thresholds():
    return fields.Nested(ThresholdsSchema(partial=True), load_default=None, allow_none=True)


class TriggerLooksSchema(SettingsSchema):
    """A look per trigger, over the main one."""

    time = partial_look()
    exit = partial_look(
        title="Уже уходите? Перезвоним за [TIMER_TIME] секунд",
        text="Оставьте номер — расскажем о скидках, пока вы не ушли.",
    )
    scroll = partial_look()
    hash = partial_look()
    button = partial_look()


class ChannelRuleSchema(SettingsSchema):
    show = fields.Boolean(load_default=True, metadata=label("Show"))
    format = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(FORMATS), metadata=label("Format")
    )
    thresholds = partial_thresholds()
    offhours_thresholds = partial_thresholds()


class ChannelsSchema(SettingsSchema):
    direct = nested(ChannelRuleSchema, "Direct")
    organic = nested(ChannelRuleSchema, "Organic search")
    ads = nested(ChannelRuleSchema, "Ads")
    referral = nested(ChannelRuleSchema, "Referral")
    social = nested(ChannelRuleSchema, "Social")


class RuleSchema(UrlUtmCondition):
    """A URL or UTM rule: when it matches (highest weight wins) it changes the widget."""

    show = fields.Boolean(load_default=True, metadata=label("Show (no = never)"))
    format = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(FORMATS), metadata=label("Format")
    )
    thresholds = partial_thresholds()
    offhours_thresholds = partial_thresholds()
    look = partial_look()


class HashSchema(SettingsSchema):
    """A link <a href="#NAME"> on the site opens the widget configured for NAME."""

    name = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="Latin letters, digits, - and _."),
        metadata=label("Name (#name in the link)"),
    )
    format = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(FORMATS), metadata=label("Format")
    )
    look = partial_look()


class TimeScreenSchema(SettingsSchema):
    title = words("Когда вам удобно поговорить?", 200, "Title")
    day_label = words("День", 60, "Day label")
    time_label = words("Время", 60, "Time label")
    button_text = words("Перезвоните мне", 60, "Button")
    back_text = words("Назад", 60, "Back")


class ClosingSchema(CallStateTexts):
    """The screens after the number is left: the countdown ([LIVE_TIMER]) while nobody is rung yet,
    then one state line at a time, from the call's live state (docs/site-script.md#the-widget)."""

    working_title = words("Спасибо! Уже звоним", 200, "Title (working hours)")
    working_text = words("Оператор позвонит вам через [LIVE_TIMER]", 300, "Text (working hours)")
    offhours_title = words("Спасибо! Заявка принята", 200, "Title (off hours)")
    offhours_text = words("Мы перезвоним вам в выбранное время:", 300, "Text (off hours)")


class LauncherSchema(SettingsSchema):
    """A round call button in the corner that opens the widget at any time."""

    show = fields.Boolean(load_default=True, metadata=label("Show the button"))
    position = fields.String(load_default="right", validate=validate.OneOf(["left", "right"]), metadata=label("Side"))
    color = Color("#22c55e", metadata=label("Colour"))
    label_text = words("Заказать обратный звонок", 100, "Screen-reader label")


class WidgetSettings(SettingsSchema):
    look = nested(LookSchema, "Look")
    thresholds = nested(ThresholdsSchema, "Triggers (working hours)")
    offhours_thresholds = nested(ThresholdsSchema, "Triggers (off hours)", time_seconds=60)
    trigger_looks = nested(TriggerLooksSchema, "Look per trigger")
    offhours_look = partial_look(
        title="Сейчас мы отдыхаем, но перезвоним, когда вам удобно",
        text="Выберите день и время — оператор позвонит точно в срок.",
        button_text="Перезвоните мне",
        time_link="",
    )
    time_screen = nested(TimeScreenSchema, "Time choice")
    closing = nested(ClosingSchema, "Closing screens")
    launcher = nested(LauncherSchema, "Call button")
    channels = nested(ChannelsSchema, "Channel rules")
    rules = fields.List(
        fields.Nested(RuleSchema),
        load_default=list,
        validate=validate.Length(max=200),
        metadata=label("URL and UTM rules"),
    )
    hashes = fields.List(
        fields.Nested(HashSchema), load_default=list, validate=validate.Length(max=50), metadata=label("HASH links")
    )


assert set(CHANNELS) == set(ChannelsSchema().fields)
