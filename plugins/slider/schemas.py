"""The slider's per-connection settings (docs/slider.md): a side tab that opens a vertical set of up
to 12 cards -- services, promotions, links and a callback form -- shown by channel and URL/UTM rules.
``SliderSettings().load({})`` is a finished, good-looking slider. Labels are English message ids,
the Russian is in ``locales/ru/LC_MESSAGES/messages.po``."""

from __future__ import annotations

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from perezvon.api import CHANNELS, CallStateTexts, Color, SettingsSchema, UrlUtmCondition, WebUrl, label, nested, words

MAX_CARDS = 12
KINDS = ("service", "promotion", "link", "callback")
ACTIONS = ("link", "callback", "details")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


class LookSchema(SettingsSchema):
    """The tab and the panel of cards, each element styled on its own."""

    side = fields.String(
        load_default="right",
        validate=validate.OneOf(["left", "right"], labels=["Left", "Right"]),
        metadata=label("Side of the screen"),
    )
    tab_label = words("Услуги и акции", 40, "Tab label")
    tab_background = Color("#2563eb", metadata=label("Tab background"))
    tab_text_color = Color("#ffffff", metadata=label("Tab text colour"))
    tab_top_percent = fields.Integer(
        load_default=50, validate=validate.Range(min=10, max=90), metadata=label("Tab position, % from the top")
    )
    title = words("Чем можем помочь?", 120, "Panel title")
    title_color = Color("#0f172a", metadata=label("Title colour"))
    panel_background = Color("#f1f5f9", metadata=label("Panel background"))
    panel_width = fields.Integer(
        load_default=360, validate=validate.Range(min=260, max=520), metadata=label("Panel width, px")
    )
    overlay = Color("rgba(15, 23, 42, 0.35)", metadata=label("Page overlay"))
    close_color = Color("#475569", metadata=label("Close button"))
    card_background = Color("#ffffff", metadata=label("Card background"))
    card_border = Color("#e2e8f0", metadata=label("Card border"))
    card_title_color = Color("#0f172a", metadata=label("Card title colour"))
    card_text_color = Color("#475569", metadata=label("Card text colour"))
    accent_color = Color("#2563eb", metadata=label("Accent colour", help="links, the kind badge, focus"))
    button_background = Color("#16a34a", metadata=label("Button background"))
    button_text_color = Color("#ffffff", metadata=label("Button text colour"))
    radius = fields.Integer(
        load_default=14, validate=validate.Range(min=0, max=40), metadata=label("Corner radius, px")
    )
    font_family = words(FONT, 200, "Font")


class CardSchema(SettingsSchema):
    """One card: what it says and what a click on it does."""

    id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="Latin letters, digits, - and _."),
        metadata=label("Id (sent with the click event)"),
    )
    kind = fields.String(
        load_default="service",
        validate=validate.OneOf(KINDS, labels=["Service", "Promotion", "Link", "Callback"]),
        metadata=label("Kind"),
    )
    enabled = fields.Boolean(load_default=True, metadata=label("Shown"))
    title = words("Услуга", 120, "Title")
    text = words("", 300, "Text")
    image = WebUrl(load_default="", validate=validate.Length(max=1000), metadata=label("Image address"))
    badge = words("", 30, "Badge", help="a short word over the title, e.g. «−10%»")
    action = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(ACTIONS, labels=["Open the link", "Open the callback form", "Show the details"]),
        metadata=label("A click", help="empty: by the kind"),
    )
    url = WebUrl(load_default="", validate=validate.Length(max=2000), metadata=label("Link address"))
    new_tab = fields.Boolean(load_default=False, metadata=label("Open the link in a new tab"))
    details = words("", 1000, "Details (promotion)")
    details_button = words("Получить предложение", 60, "Details button")

    @post_load
    def _action_by_kind(self, data, **_):
        """An empty action is the kind's own: a link opens, a promotion shows its details, a callback
        card opens the form, a service opens its link when it has one, else the form."""
        if not data.get("action"):
            by_kind = {"link": "link", "promotion": "details", "callback": "callback"}
            data["action"] = by_kind.get(data["kind"]) or ("link" if data.get("url") else "callback")
        return data

    @validates_schema
    def _link_needs_address(self, data, **_):
        wants_link = data.get("action") == "link" or (data.get("kind") == "link" and not data.get("action"))
        if wants_link and not data.get("url"):
            raise ValidationError({"url": ["A card that opens a link needs its address."]})


class FormSchema(SettingsSchema):
    """The callback form a callback card (or a promotion's button) opens inside the panel."""

    title = words("Перезвоним за [TIMER_TIME] секунд", 200, "Form title", help="[TIMER_TIME], [LIVE_TIMER]")
    text = words("Оставьте номер — оператор позвонит вам бесплатно.", 300, "Form text")
    offhours_title = words("Сейчас мы отдыхаем — перезвоним, когда вам удобно", 200, "Form title (off hours)")
    name_field = fields.String(
        load_default="hidden",
        validate=validate.OneOf(["hidden", "optional", "required"], labels=["Hidden", "Optional", "Required"]),
        metadata=label("Name field"),
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
    day_label = words("День", 60, "Day label")
    time_label = words("Время", 60, "Time label")
    button_text = words("Жду звонка!", 60, "Button text")
    consent_text = words("Согласен на обработку персональных данных", 300, "Consent")
    consent_checked = fields.Boolean(load_default=True, metadata=label("Checked by default"))
    disclaimer = words("Нажимая кнопку, вы принимаете [LINK1].", 500, "Disclaimer", help="[LINK1], [LINK2]")
    link1_text = words("условия обработки персональных данных", 100, "Link 1 text")
    link1_url = WebUrl(load_default="", metadata=label("Link 1 address"))
    link2_text = words("", 100, "Link 2 text")
    link2_url = WebUrl(load_default="", metadata=label("Link 2 address"))
    back_text = words("Назад", 40, "Back")


class ClosingSchema(CallStateTexts):
    """After the number is left: the countdown, then the call's live state one line at a time."""

    working_title = words("Спасибо! Уже звоним", 200, "Title (working hours)")
    working_text = words("Оператор позвонит вам через [LIVE_TIMER]", 300, "Text (working hours)")
    offhours_title = words("Спасибо! Заявка принята", 200, "Title (off hours)")
    offhours_text = words("Мы перезвоним вам в выбранное время:", 300, "Text (off hours)")


class RuleSchema(UrlUtmCondition):
    """A URL or UTM rule: the heaviest that matches decides whether the tab is shown."""

    show = fields.Boolean(load_default=True, metadata=label("Show (no = never)"))


class DisplaySchema(SettingsSchema):
    channels = fields.List(
        fields.String(
            validate=validate.OneOf(CHANNELS, labels=["Direct", "Organic search", "Ads", "Referral", "Social"])
        ),
        load_default=lambda: list(CHANNELS),
        metadata=label("Channels it is shown on"),
    )
    rules = fields.List(
        fields.Nested(RuleSchema),
        load_default=list,
        validate=validate.Length(max=200),
        metadata=label("URL and UTM rules"),
    )


DEFAULT_CARDS = [
    {
        "id": "callback",
        "kind": "callback",
        "title": "Перезвоним за [TIMER_TIME] секунд",
        "text": "Оставьте номер — оператор позвонит бесплатно и ответит на вопросы.",
    },
    {
        "id": "promo",
        "kind": "promotion",
        "badge": "−10%",
        "title": "Скидка 10% на первый заказ",
        "text": "Только в этом месяце.",
        "details": "Оставьте номер — закрепим скидку за вами и расскажем об условиях.",
    },
    {
        "id": "consult",
        "kind": "service",
        "title": "Бесплатная консультация",
        "text": "Подберём решение под вашу задачу.",
    },
]


class SliderSettings(SettingsSchema):
    look = nested(LookSchema, "Look")
    cards = fields.List(
        fields.Nested(CardSchema),
        load_default=lambda: CardSchema(many=True).load(DEFAULT_CARDS),
        validate=validate.Length(max=MAX_CARDS, error="At most 12 cards."),
        metadata=label("Cards"),
    )
    form = nested(FormSchema, "Callback form")
    closing = nested(ClosingSchema, "Closing screen")
    display = nested(DisplaySchema, "Where it is shown")

    @validates_schema
    def _unique_ids(self, data, **_):
        ids = [c["id"] for c in data.get("cards", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError({"cards": ["Each card needs its own id."]})
