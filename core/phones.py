"""Phone numbers: parsed and normalised to E.164 with ``phonenumbers``.

The site runtime's phone input (web/static/site/runtime.js, ``phoneInput``) applies the
same rules in the browser; tests/phone_cases.json is the table both sides are tested
against (tests/test_phones.py for this module, tests/site/test_site_phones.py in Chromium).
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"

#: the messages (English ids, translated by the core's catalog); the runtime shows the same texts
EMPTY = "Enter a phone number."
INVALID = "Not a valid phone number."
LETTERS = "A phone number cannot contain letters."
EXTENSION = "Extension numbers are not supported: enter the number without one."


class InvalidPhone(ValueError):
    pass


def normalise(raw: str, region: str = DEFAULT_REGION) -> str:
    """``"8 (912) 345-67-89"`` -> ``"+79123456789"``; raises :class:`InvalidPhone`.

    Refused rather than guessed: letters (phonenumbers would read "8 800 FLOWERS" as
    digits, and "8 916 555 44 33 abc" as the number alone) and extensions ("доб. 12",
    "ext. 12", "#12": we dial the number, never the extension, so a lead with one
    would silently reach the wrong person).
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone(EMPTY)
    if len(text) > 40:
        raise InvalidPhone(INVALID)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and number.extension:
        raise InvalidPhone(EXTENSION)
    if any(char.isalpha() for char in text):
        raise InvalidPhone(LETTERS)
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidPhone(INVALID)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
