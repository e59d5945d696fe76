"""Masking a client's phone and e-mail for users who may not see them (docs/admin.md#who-may-do-what).

A user whose grants do not let them see a connection's client contacts reads
``+7 916 ***-**-33`` instead of the phone and ``i***@example.com`` instead of the
e-mail, on every exit: the Calls table, the call's page, the export, the read
API and the e-mails they receive. Enough is left to tell two clients apart and
to recognise a number the client repeats on the phone; not enough to copy it.

Free text that came from a visitor (a form's fields, a lead's ``extra``) is
scanned for phone numbers and e-mail addresses, which are masked where found.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers

from perezvon.core.phones import DEFAULT_REGION

MASK = "*"
#: digits left visible at the end of a number
VISIBLE_TAIL = 2

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
#: a run of digits with the separators people write in numbers: what the phone matcher may have missed
_LONG_DIGITS = re.compile(r"\+?\d(?:[\s()-]*\d){8,}")


def _mask_digits(text: str, keep_tail: int = VISIBLE_TAIL) -> str:
    """Every digit of ``text`` but the last ``keep_tail`` replaced by ``*``; separators stay."""
    total = sum(char.isdigit() for char in text)
    seen = 0
    out = []
    for char in text:
        if char.isdigit():
            seen += 1
            out.append(char if seen > total - keep_tail else MASK)
        else:
            out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def mask_phone(phone: str) -> str:
    """``+79161234533`` -> ``+7 916 ***-**-33``: the country code, the first group (the operator or the
    area) and the last two digits; every other digit hidden. Written in the number's own country's
    international format, so it works for any country."""
    if not phone:
        return phone
    try:
        number = phonenumbers.parse(phone, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and number.national_number:
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        code, _, rest = formatted.partition(" ")
        first = re.match(r"\d*", rest).group(0)  # type: ignore[union-attr] # \d* always matches
        tail = rest[len(first) :]
        if sum(char.isdigit() for char in tail) > VISIBLE_TAIL:
            return f"{code} {first}{_mask_digits(tail)}"
        return f"{code} {_mask_digits(rest)}"
    # not a number phonenumbers knows: keep a leading "+" and the last two digits
    return _mask_digits(phone)


@functools.lru_cache(maxsize=8192)
def mask_email(email: str) -> str:
    """``ivan@example.com`` -> ``i***@example.com``: the first character of the mailbox and the domain."""
    local, at, domain = (email or "").rpartition("@")
    if not at:
        return email
    return f"{local[:1]}***@{domain}"


def mask_text(text: str) -> str:
    """``text`` with every e-mail address and phone number in it masked."""
    if not text or not isinstance(text, str):
        return text
    if "@" in text:
        text = _EMAIL.sub(lambda match: mask_email(match.group(0)), text)
    if sum(char.isdigit() for char in text) < 7:  # no phone number is shorter
        return text
    pieces = []
    last = 0
    for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION, leniency=phonenumbers.Leniency.VALID):
        pieces.append(text[last : match.start])
        pieces.append(mask_phone(phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)))
        last = match.end
    pieces.append(text[last:])
    text = "".join(pieces)
    # what the matcher does not take for a number (too long, odd separators) is still hidden
    return _LONG_DIGITS.sub(lambda match: _mask_digits(match.group(0)), text)


def mask_value(value: Any) -> Any:
    """A JSON value (a lead's ``extra``, a form's fields) with the contacts in its texts masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1_000_000:
        return mask_text(str(value))  # a phone sent as a JSON number
    return value


def masked_event_data(data: dict[str, Any]) -> dict[str, Any]:
    """A notification's data (``lead``, ``call``, ``attempts`` ...) as a user without the contacts right may
    read it: the lead's phone masked, its free text (``extra``) scanned; UTM, pages and the site's own
    number shown on the page stay as they are (they are not the client's)."""
    lead = dict(data.get("lead") or {})
    if lead.get("phone"):
        lead["phone"] = mask_phone(str(lead["phone"]))
    if lead.get("extra"):
        lead["extra"] = mask_value(lead["extra"])
    return {**data, "lead": lead, "contacts_masked": True}
