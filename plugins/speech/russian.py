"""Announcement text made speakable for a Russian voice. Pure functions, no I/O.

:func:`normalize` is what the engine applies to every announcement:

* phone numbers are read in groups, as Russians say them:
  ``+79161234567`` -> ``плюс семь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь``;
  ``8 (916) 123-45-67`` -> ``восемь, девятьсот шестнадцать, ...``;
* words in Latin letters (a visitor who typed ``John Smith``) are transliterated to Cyrillic,
  so the Russian voice reads them instead of switching to an English one mid-sentence;
* everything but Cyrillic and Latin letters, digits, whitespace and ``. , ! ? : ;`` (and a hyphen
  inside a word) is dropped, whitespace is collapsed and the text is cut to a length limit.

The result is plain text for the engine's standard input: no markup, nothing a shell or a
dialplan would interpret (the engine never uses a shell anyway).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from num2words import num2words

#: announcements longer than this are cut (at a word boundary)
MAX_CHARS = 1000
#: a visitor's name longer than this is cut
MAX_NAME_CHARS = 60

# --- numbers ------------------------------------------------------------------------------


def number_words(value: int) -> str:
    """``916`` -> ``девятьсот шестнадцать`` (cardinal, masculine: ``1`` -> ``один``)."""
    if value < 0:
        raise ValueError("a non-negative number is needed")
    return num2words(value, lang="ru")


def group_words(digits: str) -> str:
    """One group of a phone number: each leading zero is ``ноль``, the rest is read as a number.

    ``"45"`` -> ``сорок пять``, ``"05"`` -> ``ноль пять``, ``"00"`` -> ``ноль ноль``,
    ``"050"`` -> ``ноль пятьдесят``.
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"not a group of digits: {digits!r}")
    rest = digits.lstrip("0")
    zeros = ["ноль"] * (len(digits) - len(rest))
    return " ".join(zeros + ([number_words(int(rest))] if rest else []))


def split_group(digits: str) -> list[str]:
    """Groups longer than three digits are split the way they are said:
    4 -> 2+2 (``0958`` -> ``09 58``), 5 -> 3+2, 6 -> 3+3, 7 -> 3+2+2."""
    if len(digits) <= 3:
        return [digits]
    if len(digits) == 4:
        return [digits[:2], digits[2:]]
    return [digits[:3]] + split_group(digits[3:])


def _national_groups(number: phonenumbers.PhoneNumber) -> list[str]:
    """The national part's groups as the international format writes them (``916 123-45-67``)."""
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    groups = re.findall(r"\d+", formatted)[1:]  # the first group is the country code
    national = str(phonenumbers.national_significant_number(number))
    if "".join(groups) != national:  # a format phonenumbers does not know: group it ourselves
        groups = [national]
    return [part for group in groups for part in split_group(group)]


def phone_words(raw: str) -> str:
    """A phone number read in groups, the groups separated by commas (a short pause).

    ``+79161234567`` and ``+7 (916) 123-45-67`` -> ``плюс семь, девятьсот шестнадцать, сто
    двадцать три, сорок пять, шестьдесят семь``. A national number is read as written:
    ``89161234567`` -> ``восемь, девятьсот шестнадцать, ...``, ``9161234567`` -> ``девятьсот
    шестнадцать, ...``. Raises :class:`ValueError` for a string that is not a phone number.
    """
    text = raw.strip()
    digits = re.sub(r"\D", "", text)
    if not re.fullmatch(r"\+?[\d\s\-().]+", text) or not digits.isascii():
        raise ValueError(f"not a phone number: {raw!r}")
    international = text.startswith("+")
    if international:
        if not 8 <= len(digits) <= 15:
            raise ValueError(f"not a phone number: {raw!r}")
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_possible_number(number):
            head = [f"плюс {number_words(number.country_code or 0)}"]  # parse() always sets it
            groups = _national_groups(number)
        else:  # a plan phonenumbers does not know: say the digits in groups all the same
            words = [group_words(g) for g in split_group(digits)]
            return ", ".join([f"плюс {words[0]}"] + words[1:])
        return ", ".join(head + [group_words(g) for g in groups])
    if len(digits) == 11 and digits[0] in "78":
        head, national = [number_words(int(digits[0]))], digits[1:]
    elif len(digits) == 10:
        head, national = [], digits
    else:
        raise ValueError(f"not a phone number: {raw!r}")
    try:
        number = phonenumbers.parse("+7" + national, None)
    except phonenumbers.NumberParseException:  # pragma: no cover - ten digits always parse
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        groups = _national_groups(number)
    else:
        groups = [national[:3], national[3:6], national[6:8], national[8:]]
    return ", ".join(head + [group_words(g) for g in groups])


# a digit run with single separators: "+7 (916) 123-45-67", "89161234567", "+44 20 7946 0958"
_PHONE = re.compile(r"(?<![\w+])\+?\d(?:[ \t\-().]{0,3}\d){7,14}(?![\w])")


def _speak_phones(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)
        # "12.05.2024" and other dotted numbers are dates or amounts, not phones
        if "." in candidate and not candidate.startswith("+"):
            return candidate
        try:
            return phone_words(candidate)
        except ValueError:
            return candidate  # an order number, a sum: the voice reads it as a number

    return _PHONE.sub(replace, text)


# --- Latin names ------------------------------------------------------------------------------

# longest first; "h" after a vowel is silent unless a vowel follows (John -> Джон, Sarah -> Сара)
_DIGRAPHS = [
    ("shch", "щ"),
    ("sch", "ш"),
    ("tch", "ч"),
    ("sh", "ш"),
    ("ch", "ч"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ts", "ц"),
    ("tz", "ц"),
    ("ph", "ф"),
    ("th", "т"),
    ("gh", "г"),
    ("ck", "к"),
    ("qu", "кв"),
    ("ee", "и"),
    ("oo", "у"),
    ("ya", "я"),
    ("yu", "ю"),
    ("yo", "ё"),
    ("ye", "е"),
    ("ia", "ия"),
    ("x", "кс"),
    ("j", "дж"),
]
_LETTERS = {
    "a": "а",
    "b": "б",
    "d": "д",
    "f": "ф",
    "g": "г",
    "i": "и",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "q": "к",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "v": "в",
    "w": "в",
    "z": "з",
}
#: Latin letters that do not decompose into a base letter and an accent
_SPECIAL = {"ß": "ss", "ø": "o", "æ": "e", "œ": "e", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
_VOWELS = set("aeiouy")


def _strip_accents(word: str) -> str:
    word = "".join(_SPECIAL.get(ch, ch) for ch in word.lower())
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def transliterate(word: str) -> str:
    """One word in Latin letters -> Cyrillic, by a small phonetic mapping.

    ``John`` -> ``Джон``, ``Smith`` -> ``Смит``, ``Sergey`` -> ``Сергей``, ``Perezvon`` ->
    ``Перезвон``. Good enough for a voice to read a name; not a scholarly transliteration.
    """
    src = _strip_accents(word)
    out: list[str] = []
    i = 0
    while i < len(src):
        rest = src[i:]
        prev = src[i - 1] if i else ""
        nxt = src[i + 1] if i + 1 < len(src) else ""
        for latin, cyrillic in _DIGRAPHS:
            if rest.startswith(latin):
                out.append(cyrillic)
                i += len(latin)
                break
        else:
            ch = src[i]
            if ch == "c":
                out.append("с" if nxt in ("e", "i", "y") else "к")
            elif ch == "e":
                out.append("э" if i == 0 else "е")
            elif ch == "y":
                # a consonant before it: a vowel (Mary -> Мари); a vowel before it: й (Sergey -> Сергей)
                out.append("й" if prev in _VOWELS or (i == 0 and nxt in _VOWELS) else "и")
            elif ch == "h":
                if not (prev in _VOWELS and nxt not in _VOWELS):
                    out.append("х")
            elif ch in _LETTERS:
                out.append(_LETTERS[ch])
            # anything else (an apostrophe, a letter of another script) is dropped
            i += 1
    result = "".join(out)
    if word[:1].isupper():
        result = result[:1].upper() + result[1:]
    return result


# --- the whole text ---------------------------------------------------------------------------

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"  # Latin letters, with accents
_LATIN_WORD = re.compile(rf"[{_LATIN}]+(?:['’][{_LATIN}]+)*")
_KEEP_PUNCT = ".,!?:;"


def _is_cyrillic(ch: str) -> bool:
    return ch.isalpha() and "CYRILLIC" in unicodedata.name(ch, "")


def _transliterate_latin_words(text: str) -> str:
    return _LATIN_WORD.sub(lambda m: transliterate(m.group(0).replace("'", "").replace("’", "")), text)


def _clean(text: str) -> str:
    """Keep Cyrillic, digits, whitespace and sentence punctuation; a hyphen only inside a word."""
    out = []
    for i, ch in enumerate(text):
        if (
            _is_cyrillic(ch)
            or (ch.isdigit() and ch.isascii())
            or ch in _KEEP_PUNCT
            or (ch == "-" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum())
        ):
            out.append(ch)
        elif ch in "–—":  # a dash between clauses is a pause
            out.append(",")
        else:
            out.append(" ")
    cleaned = " ".join("".join(out).split())
    cleaned = re.sub(r"\s+([.,!?:;])", r"\1", cleaned)  # no space before punctuation
    cleaned = re.sub(r"([.,!?:;])[.,!?:;]+", r"\1", cleaned)  # "!!!" -> "!", ",." -> ","
    cleaned = re.sub(r"([.,!?:;])(?=[^\s\d])", r"\1 ", cleaned)  # "а,б" -> "а, б"
    return cleaned.lstrip(_KEEP_PUNCT + " ")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(_KEEP_PUNCT + " -")


def normalize(text: str, max_chars: int = MAX_CHARS) -> str:
    """An announcement made speakable: phones in groups, Latin words in Cyrillic, nothing odd.

    ``'Клиент John, телефон +79161234567'`` -> ``'Клиент Джон, телефон плюс семь, девятьсот
    шестнадцать, сто двадцать три, сорок пять, шестьдесят семь'``.
    """
    text = str(text).replace("№", " номер ").replace("&", " и ")
    text = unicodedata.normalize("NFKC", text)  # full-width digits and letters, ligatures
    text = _speak_phones(text)
    text = _transliterate_latin_words(text)
    return _cut(_clean(text), max_chars)


def speakable_name(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A visitor's name for an announcement: the same cleaning, a shorter limit, no trailing dot."""
    return normalize(name, max_chars).rstrip(_KEEP_PUNCT + " ")
