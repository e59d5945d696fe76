"""A form e-mail, as bytes, becomes the fields of the form: pure functions, no I/O.

Site builders and CMSs e-mail their forms in many shapes: ``Label: value``
lines (Tilda, WordPress, MODX), HTML tables (MODX, many PHP scripts), the
question / ``*****`` / answer blocks of 1C-Bitrix web forms, Contact Form 7's
``From: name <e-mail>``, Joomla's "... from:" line. They come in UTF-8,
windows-1251 or KOI8-R, base64 or quoted-printable, and often mislabelled
(an 8-bit header, a body in UTF-8 declared as windows-1251). The parser is
lenient about all of that and never raises on bad input: whatever it cannot
read it leaves out and notes in ``ParsedForm.defects``.

It is strict about size and shape only where the standard ``email`` package
would be slow or blow up (:func:`check_structure`: a "message bomb" of
thousands of nested or sibling parts), because the server runs it for
strangers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email
import email.policy
import re
from email.header import Header, decode_header
from email.message import Message
from email.utils import parseaddr
from urllib.parse import unquote

import phonenumbers

from perezvon.api import DEFAULT_REGION
from perezvon.plugins.siteforms.decoding import clean_line, decode_header_value, decode_text, html_to_text

#: more ``Content-Type: multipart/...`` headers than this and a message is refused;
#: a form e-mail has one or two (alternative inside mixed), and each level of
#: nesting costs the ``email`` package a level of generator recursion
MAX_MULTIPARTS = 50
#: more MIME boundary lines than this and a message is refused (a form e-mail has a handful)
MAX_BOUNDARY_LINES = 1000
#: only this much decoded text is searched for fields, phones and names
MAX_TEXT_CHARS = 100_000
#: at most this many form fields are kept with the lead
MAX_FIELDS = 60
MAX_FIELD_VALUE_CHARS = 500
MAX_NAME_CHARS = 200
MAX_URLS = 50

_MULTIPART_HEADER = re.compile(rb"(?im)^content-type:[ \t]*(?:\r?\n[ \t]+)?multipart/")
_BOUNDARY_LINE = re.compile(rb"(?m)^--[^\r\n]{1,200}\r?$")


class MessageTooComplex(ValueError):
    """The message's MIME structure is far beyond any form e-mail: it is refused, not parsed."""


@dataclasses.dataclass
class ParsedForm:
    """What a form e-mail says, before it is matched against a site."""

    message_id: str = ""
    subject: str = ""
    #: the body as plain text (HTML converted), bounded to MAX_TEXT_CHARS
    text: str = ""
    #: ``(label, value)`` pairs found in the body, in order
    fields: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: phone numbers in E.164: those in phone fields first, then the rest of the text in order
    phones: list[str] = dataclasses.field(default_factory=list)
    name: str = ""
    #: the URL of a "Page"/"Страница"/"URL" field, when the form sends one
    page_url: str = ""
    #: every http(s) URL in the body (text and links), in order
    urls: list[str] = dataclasses.field(default_factory=list)
    #: utm_* values of the form's own fields (``{"source": "yandex", ...}``)
    utm: dict[str, str] = dataclasses.field(default_factory=dict)
    #: utm_* parameters found anywhere else in the message: links, cookies (Tilda's TILDAUTM)
    utm_elsewhere: dict[str, str] = dataclasses.field(default_factory=dict)
    #: what was wrong with the message, for support (never shown to visitors)
    defects: list[str] = dataclasses.field(default_factory=list)
    #: the ``X-Perezvon-Check`` header of the admin's "send a test e-mail" check (verified by delivery)
    check_token: str = ""
    #: the name came from the From header's display name (matching drops it when it is the site's own)
    name_from_header: bool = False


# --- structure guard -------------------------------------------------------------------------


def check_structure(raw: bytes) -> None:
    """Refuse a message whose MIME structure no form e-mail has; cheap (two C regex scans).

    Raises :class:`MessageTooComplex`. Checked before the ``email`` package
    sees the message, so a nested-part bomb costs two scans, not a parse.
    """
    multiparts = len(_MULTIPART_HEADER.findall(raw))
    if multiparts > MAX_MULTIPARTS:
        raise MessageTooComplex(f"{multiparts} multipart sections (at most {MAX_MULTIPARTS})")
    boundaries = len(_BOUNDARY_LINE.findall(raw))
    if boundaries > MAX_BOUNDARY_LINES:
        raise MessageTooComplex(f"{boundaries} MIME boundary lines (at most {MAX_BOUNDARY_LINES})")


# --- the body ----------------------------------------------------------------------------------------


def _lenient_base64(text: str) -> bytes:
    """Base64 with a broken tail or stray characters: what can be decoded, rather than nothing.

    (compat32 hands back the undecoded text when the padding is wrong.)
    """
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        data = re.sub(r"[^A-Za-z0-9+/]", "", text)
        return base64.b64decode(data[: len(data) - len(data) % 4])


def _part_bytes(part: Message, defects: list[str]) -> bytes:
    payload = part.get_payload()
    if (part.get("Content-Transfer-Encoding") or "").strip().lower() == "base64" and isinstance(payload, str):
        data = _lenient_base64(payload)
    else:
        decoded = part.get_payload(decode=True)  # bytes, or None for a multipart part
        data = decoded if isinstance(decoded, bytes) else b""
    defects.extend(type(d).__name__ for d in part.defects)
    return data


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    return (
        disposition == "attachment"
        or bool(part.get_param("filename", header="Content-Disposition"))
        or bool(part.get_param("name"))
    )


def _text_parts(message: Message, defects: list[str]) -> tuple[list[str], list[str]]:
    """The decoded text/plain and text/html parts that are not attachments, in order."""
    plain: list[str] = []
    html: list[str] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_BOUNDARY_LINES or depth > MAX_MULTIPARTS:
            defects.append("too many parts: the rest was not read")
            break
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))
            continue
        maintype = part.get_content_maintype()
        if maintype != "text" or _is_attachment(part):
            continue  # attachments and images are ignored
        text = decode_text(_part_bytes(part, defects), part.get_content_charset())
        (html if part.get_content_subtype() == "html" else plain).append(text)
    return plain, html


# --- fields ------------------------------------------------------------------------------------------

_FIELD_LINE = re.compile(r"^\s*(?P<label>[^:\n]{1,60}?)\s*:[ \t]*(?P<value>.*?)\s*$")
_DASH_FIELD_LINE = re.compile(r"^\s*(?P<label>[^\n]{1,40}?)\s+[-–—]\s+(?P<value>.+?)\s*$")
#: a line that can be a label by itself: a few words, no digits, no colon or dash-separated value
_LABEL_ALONE = re.compile(r"^\s*[^\W\d_]+(?:[ \t]+[^\W\d_]+){0,4}[ \t]*\*?\s*$")
_SEPARATOR_LINE = re.compile(r"^\s*[*\-=_~#]{5,}\s*$")
#: WPForms' plain-text {all_fields}: "--- Label ---", a blank line, the value
_BANNER_LINE = re.compile(r"^\s*-{3}\s+(?P<label>[^-\s].{0,60}?)\s+-{3}\s*$")
_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f<>\"'()\[\]{}|\\^`]+", re.I)
_EMAIL_IN_ANGLES = re.compile(r"<[^<>@\s]+@[^<>\s]+>|\S+@\S+")
_UTM_IN_TEXT = re.compile(r"(?i)\butm_(source|medium|campaign|content|term)=([^&\s|;\"'<>#]+)")
_UTM_LABEL = re.compile(r"^utm[ _-]?(source|medium|campaign|content|term)$")

_NAME_LABELS = frozenset(
    {
        "имя",
        "ваше имя",
        "имя клиента",
        "фио",
        "ф и о",
        "ваше фио",
        "контактное лицо",
        "имя и фамилия",
        "фамилия и имя",
        "фамилия имя отчество",
        "фамилия имя",
        "как к вам обращаться",
        "как вас зовут",
        "представьтесь",
        "автор",
        "ваше имя и фамилия",
        "name",
        "your name",
        "full name",
        "first name",
        "contact name",
        "contact person",
        "client name",
        "имя отправителя",
    }
)
#: a CF7 body starts "From: name <e-mail>"; used when no name field is found
_SENDER_LABELS = frozenset({"from", "от", "от кого", "отправитель", "sender"})
_PHONE_LABELS = frozenset(
    {
        "тел",
        "tel",
        "моб",
        "мобильный",
        "сотовый",
        "номер",
        "ваш номер",
        "контактный номер",
        "whatsapp",
        "mobile",
        "cell",
        "номер whatsapp",
    }
)
_PAGE_LABELS = frozenset(
    {
        "страница",
        "url",
        "page",
        "page url",
        "адрес страницы",
        "страница отправки",
        "страница сайта",
        "ссылка на страницу",
        "форма отправлена со страницы",
        "отправлено со страницы",
        "заявка со страницы",
        "страница заявки",
        "страница формы",
        "url страницы",
        "source page",
        "sent from page",
        "form page",
    }
)


def normalise_label(label: str) -> str:
    """``"Ваше  Имя*"`` -> ``"ваше имя"``: the form of a label compared with the known ones."""
    text = label.lower().replace("ё", "е")
    text = re.sub(r"[^\w\s-]", " ", text)
    return " ".join(text.replace("_", " ").replace("-", " ").split())


_OPTIONAL_MARKS = ("required", "обязательно", "обязательное поле", "обязательное")


def label_role(label: str) -> str | None:
    """``"name" | "sender" | "phone" | "page" | "utm_<key>"`` or None for any other field."""
    norm = normalise_label(label)
    for mark in _OPTIONAL_MARKS:  # "Your Name (required)", "Имя (обязательно)"
        if norm.endswith(" " + mark):
            norm = norm[: -len(mark) - 1]
    utm = _UTM_LABEL.match(norm.replace(" ", "_"))
    if utm:
        return f"utm_{utm.group(1)}"
    if norm in _NAME_LABELS:
        return "name"
    if norm in _SENDER_LABELS:
        return "sender"
    if norm in _PHONE_LABELS or "телефон" in norm or "phone" in norm.split() or norm.endswith(" phone"):
        return "phone"
    if norm in _PAGE_LABELS or "страниц" in norm:
        return "page"
    return None


def _plausible_label(label: str, value: str) -> bool:
    stripped = label.strip()
    return (
        bool(stripped)
        and not value.startswith("//")
        and not stripped.isdigit()
        and not re.search(r"https?$|[<>]", stripped, re.I)
        and len(stripped.split()) <= 8
    )


def extract_fields(text: str) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of a form e-mail's text, in order.

    Recognises ``Label: value`` lines, ``Label - value`` lines for known
    labels, a ``Label:`` line followed by its value lines, the 1C-Bitrix
    web-form block (question, a line of ``*``, the answer) and WPForms'
    ``--- Label ---`` block.
    """
    lines = text.splitlines()
    fields: list[tuple[str, str]] = []
    index = 0

    def block_after(start: int) -> tuple[str, int]:
        """The non-blank lines from ``start`` up to a blank line, joined; and the index after them."""
        values = []
        at = start
        while at < len(lines) and lines[at].strip() and not _SEPARATOR_LINE.match(lines[at]):
            values.append(lines[at].strip())
            at += 1
        return " ".join(values), at

    while index < len(lines) and len(fields) < MAX_FIELDS:
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        # 1C-Bitrix: "Ваше имя" / "*******************************" / "Иван"
        if (
            line.strip()
            and len(line.strip()) <= 80
            and _SEPARATOR_LINE.match(following)
            and not _SEPARATOR_LINE.match(line)
        ):
            value, after = block_after(index + 2)
            if value:  # a heading underlined with dashes has a blank line after it, not an answer
                fields.append((line.strip().rstrip(":"), value))
                index = after
                continue
        # a known label alone on its line, its value on the next (1C-Bitrix event templates:
        # "Ваше Имя" / "Екатерина Белова"); only known labels, or any heading would take the next line
        if (
            following.strip()
            and _LABEL_ALONE.match(line)
            and label_role(line) is not None
            and label_role(following.split(":", 1)[0]) is None
            and not _SEPARATOR_LINE.match(following)
        ):
            fields.append((line.strip(), following.strip()))
            index += 2
            continue
        banner = _BANNER_LINE.match(line)
        if banner:
            start = index + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            value, after = block_after(start)
            fields.append((banner.group("label"), value))
            index = max(after, index + 1)
            continue
        match = _FIELD_LINE.match(line)
        if match and _plausible_label(match.group("label"), match.group("value")):
            label, value = match.group("label").strip(), match.group("value")
            if value:
                fields.append((label, value))
                index += 1
                continue
            # "Label:" and the value on the next lines -- unless they are fields themselves
            nxt = _FIELD_LINE.match(following)
            if following.strip() and not (nxt and _plausible_label(nxt.group("label"), nxt.group("value"))):
                value, after = block_after(index + 1)
                fields.append((label, value))
                index = after
                continue
            index += 1
            continue
        dash = _DASH_FIELD_LINE.match(line)
        if dash and label_role(dash.group("label")) is not None:
            fields.append((dash.group("label").strip(), dash.group("value")))
        index += 1
    return [(clean_line(label, 64), clean_line(value, MAX_FIELD_VALUE_CHARS)) for label, value in fields]


def find_urls(text: str) -> list[str]:
    urls = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?*")
        if url not in urls:
            urls.append(url)
        if len(urls) >= MAX_URLS:
            break
    return urls


_LOOKS_LIKE_ONE_PHONE = re.compile(r"^\s*\+?[\d\s().-]{5,30}\s*$")


def phones_in_field(value: str, region: str = DEFAULT_REGION) -> list[str]:
    """The numbers of a phone field; a value that is just one number skips the (slower) matcher."""
    if _LOOKS_LIKE_ONE_PHONE.match(value):
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            return [phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)]
    return find_phones(value, region)


def find_phones(text: str, region: str = DEFAULT_REGION) -> list[str]:
    """Valid phone numbers in a text, in E.164, in order of appearance (``phonenumbers``' matcher)."""
    found: list[str] = []
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
    return found


def clean_name(value: str) -> str:
    """A person's name from a form field: one line, no e-mail address, not a phone number."""
    text = _EMAIL_IN_ANGLES.sub(" ", value)
    text = clean_line(text).strip(" \"'«»,;:-")
    if sum(ch.isdigit() for ch in text) >= 5:  # a phone typed into the name field
        return ""
    return text[:MAX_NAME_CHARS].rstrip()


def utm_from_text(text: str) -> dict[str, str]:
    """utm_* parameters anywhere in a text: links, and cookies such as Tilda's TILDAUTM (URL-encoded)."""
    utm: dict[str, str] = {}
    for match in _UTM_IN_TEXT.finditer(unquote(unquote(text))):
        key, value = match.group(1).lower(), clean_line(match.group(2), 256)
        if value and key not in utm:
            utm[key] = value
    return utm


#: "... от посетителя: Name <e-mail>" on one line (Joomla contact extensions, many PHP scripts)
_SENDER_ON_THE_LINE = re.compile(
    r"(?i)(?:\bfrom|\bот(?:\s+посетителя|\s+клиента)?)\s*:\s*(?P<who>[^<>\n]*<[^<>@\s]+@[^<>\s]+>)"
)


def _joomla_sender(lines: list[str]) -> str:
    """Joomla's contact form: "... via https://site/ from:" and then "Name <e-mail>" on the next line,
    or "... от посетителя: Name <e-mail>" on one line."""
    for at, line in enumerate(lines):
        if at + 1 < len(lines) and re.search(r"(\bfrom|\bот)\s*:\s*$", line.strip(), re.I) and "@" in lines[at + 1]:
            return clean_name(lines[at + 1])
        on_the_line = _SENDER_ON_THE_LINE.search(line)
        if on_the_line:
            name = clean_name(on_the_line.group("who"))
            if name:
                return name
    return ""


#: words of a From display name that make it a robot's or the site's, not a visitor's
_NOT_A_PERSON = frozenset(
    {
        "admin",
        "administrator",
        "bitrix",
        "company",
        "contact",
        "feedback",
        "form",
        "forms",
        "info",
        "joomla",
        "mailer",
        "modx",
        "new",
        "noreply",
        "notification",
        "order",
        "request",
        "robot",
        "service",
        "shop",
        "site",
        "support",
        "team",
        "tilda",
        "webmaster",
        "website",
        "wordpress",
        "администратор",
        "администрация",
        "битрикс",
        "заказ",
        "заявка",
        "заявки",
        "клиника",
        "компания",
        "магазин",
        "новая",
        "новое",
        "обратная",
        "обратной",
        "поддержка",
        "робот",
        "салон",
        "сайт",
        "сайта",
        "связи",
        "связь",
        "сервис",
        "сообщение",
        "студия",
        "уведомление",
        "форма",
        "формы",
    }
)
_PERSON_WORD = re.compile(r"^(?:[^\W\d_]+[-'’.]?)+$")


def person_in_from(display_name: str) -> str:
    """The From header's display name when it reads as a person's name (1-4 words of letters,
    none a robot's or a site's word), else "": forms that put the visitor's name only there
    ("Екатерина Белова <noreply@site>") are common, and so are "WordPress", "Сайт Автомир"."""
    name = clean_name(display_name)
    words = name.replace(",", " ").split()
    if not 1 <= len(words) <= 4 or re.search(r"\w\.\w{2,}", name):  # a domain is no one's name
        return ""
    if not all(_PERSON_WORD.match(word) for word in words):
        return ""
    if any(re.sub(r"[^\w-]", "", word).casefold() in _NOT_A_PERSON for word in words):
        return ""
    return name


# --- the whole message -------------------------------------------------------------------------------


def _form_of(text: str, links: list[str]) -> ParsedForm:
    text = text[:MAX_TEXT_CHARS]
    form = ParsedForm(text=text, fields=extract_fields(text))
    form.urls = find_urls(text)
    for link in links:
        if link not in form.urls and len(form.urls) < MAX_URLS:
            form.urls.append(link)
    sender = ""
    labelled_phones: list[str] = []
    for label, value in form.fields:
        role = label_role(label)
        if role == "name" and not form.name:
            form.name = clean_name(value)
        elif role == "sender" and not sender:
            sender = clean_name(value)
        elif role == "phone":
            for number in phones_in_field(value):
                if number not in labelled_phones:
                    labelled_phones.append(number)
        elif role == "page" and not form.page_url:
            urls = find_urls(value)
            form.page_url = urls[0] if urls else ""
        elif role and role.startswith("utm_") and value:
            form.utm.setdefault(role[4:], clean_line(value, 256))
    form.name = form.name or sender or _joomla_sender(text.splitlines())
    # the text is searched only when no phone field had a number: it may hold the site's own
    # numbers (a footer, a signature), which the matching step leaves out
    form.phones = labelled_phones or find_phones(text)
    form.utm_elsewhere = utm_from_text(text + "\n" + "\n".join(form.urls))
    return form


def _raw_header(message: Message, name: str) -> str:
    """A header as sent, 8-bit bytes as surrogate escapes (as :func:`decode_header_value` takes it).

    compat32 hands an 8-bit header out as a ``Header`` in the "unknown-8bit"
    charset; its chunks still hold the bytes.
    """
    value = message.get(name)
    if value is None:
        return ""
    if isinstance(value, Header):
        return b"".join(
            chunk if isinstance(chunk, bytes) else chunk.encode("ascii", "surrogateescape")
            for chunk, _ in decode_header(value)
        ).decode("ascii", "surrogateescape")
    return str(value)


def parse_message(raw: bytes) -> ParsedForm:
    """Everything a form e-mail says. Never raises for malformed input; call
    :func:`check_structure` first for input from strangers."""
    defects: list[str] = []
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    defects.extend(type(d).__name__ for d in message.defects)
    plain, html = _text_parts(message, defects)
    # The plain part is the form as the sender wrote it; the HTML one is read when the plain part
    # is missing or is a "view this in an HTML mail client" stub without a phone number.
    plain_text = "\n".join(plain)
    form = _form_of(plain_text, []) if plain_text.strip() else None
    if html and (form is None or not form.phones):
        html_text, links = html_to_text("\n".join(html))
        if html_text.strip():
            from_html = _form_of(html_text, links)
            if form is None or from_html.phones:
                form = from_html
    form = form or ParsedForm()
    form.subject = decode_header_value(_raw_header(message, "subject"))[:300]
    form.message_id = clean_line(_raw_header(message, "message-id"), 255)
    if not form.name:  # the last place a visitor's name may be: the From header's display name
        form.name = person_in_from(parseaddr(decode_header_value(_raw_header(message, "from")))[0])
        form.name_from_header = bool(form.name)
    form.check_token = clean_line(_raw_header(message, "x-perezvon-check"), 200)
    form.defects = list(dict.fromkeys(defects))
    return form
