"""Phone numbers: parsed and normalised to E.164 with ``phonenumbers``."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "RU"


class InvalidPhone(ValueError):
    pass


def normalise(raw: str, region: str = DEFAULT_REGION) -> str:
    """``"8 (912) 345-67-89"`` -> ``"+79123456789"``; raises :class:`InvalidPhone`."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("Enter a phone number.")
    if len(text) > 40:
        raise InvalidPhone("Not a valid phone number.")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("Not a valid phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
