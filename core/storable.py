"""What the stores can hold: one guard for every entry point (docs/calls.md#what-the-stores-can-hold).

Input reaches the database from many doors -- the lead API, the read API's
filters, the admin's forms, the site-forms mail server, plugin settings -- and
each refuses the same things, with the same field-level messages:

* a NUL character (PostgreSQL's text and jsonb refuse it) or a lone surrogate
  (not UTF-8: neither driver can send it);
* NaN or an infinity (not JSON; ``1e999`` parses as one);
* JSON nested deeper than :data:`MAX_DEPTH` (Python's parser and encoder recurse);
* a text over :data:`MAX_TEXT` characters where no tighter limit applies;
* a date outside :data:`FIRST_DAY` .. :data:`LAST_DAY` (year 1 or 9999 overflows
  when converted to another time zone or to a database's range), an integer id
  outside the database's ``integer`` (:data:`MAX_DB_INT`).

:func:`unstorable_values` finds them in a value and returns marshmallow-shaped
errors; :func:`parse_json` reads a request body as strict JSON (UTF-8, no NaN
literals, bounded depth); :func:`storable` cleans a value instead of refusing it,
for input no person can correct (a form mailed by a site).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

#: the longest text one value may hold where its field sets no limit of its own
MAX_TEXT = 10_000
#: the deepest JSON accepted (a lead's ``extra``, a plugin's settings): far more than any real form
MAX_DEPTH = 32
#: the largest id a filter or a lead may name: PostgreSQL's ``integer``
MAX_DB_INT = 2**31 - 1
#: the dates a filter may name: the product did not exist before, and nobody plans calls past it
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2199, 12, 31)

UNSTORABLE = "This text has characters that cannot be stored (a NUL or a broken character)."
TOO_LONG = "This text is too long."
NOT_A_NUMBER = "Not a finite number."
TOO_DEEP = "Nested too deeply."
NOT_JSON = "The body must be JSON."
DAY_OUT_OF_RANGE = "Choose a date from 2000-01-01 to 2199-12-31."
ID_OUT_OF_RANGE = "No such id."


class BadJson(ValueError):
    """A body that is not strict JSON: the message is an English message id."""


def _refuse_constant(name: str) -> Any:
    raise BadJson(NOT_JSON)


#: one decoder for every body (``json.loads`` with an argument builds a new one each call)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json(body: bytes | str) -> Any:
    """Strict JSON: UTF-8 text (``json.loads`` would also guess UTF-16 and UTF-32 from bytes), no ``NaN`` or
    ``Infinity`` literals, nesting within :data:`MAX_DEPTH`. Raises :class:`BadJson`."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson(NOT_JSON) from None
    else:
        text = body
    # Fewer brackets than the limit cannot nest deeper: the common case costs two C-level counts.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth_of_text(text) > MAX_DEPTH:
        raise BadJson(TOO_DEEP)
    try:
        return _DECODER.decode(text)
    except RecursionError:  # the scan above counts brackets inside strings too; this is the net
        raise BadJson(TOO_DEEP) from None
    except ValueError:
        raise BadJson(NOT_JSON) from None


def _depth_of_text(text: str) -> int:
    """How deep brackets nest outside strings, stopping as soon as it is over the limit."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def bad_text(text: str) -> bool:
    """A NUL or a lone surrogate: no store can hold it."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_values(value: Any, *, max_text: int | None = MAX_TEXT, _depth: int = 0) -> Any:
    """Errors, shaped like marshmallow's, for every value no store can hold, whatever a schema says:
    a NUL, a lone surrogate, NaN or infinity, nesting over :data:`MAX_DEPTH`, a text over ``max_text``
    characters (``None``: no limit here). A list's errors go on the list itself. ``{}`` when all is well."""
    if _depth == 0 and isinstance(value, dict) and _surely_storable(value, max_text):
        return {}  # the common case, decided in C: every lead passes here
    if isinstance(value, str):
        if bad_text(value):
            return [UNSTORABLE]
        return [TOO_LONG] if max_text is not None and len(value) > max_text else {}
    if isinstance(value, float):
        return {} if math.isfinite(value) else [NOT_A_NUMBER]
    if isinstance(value, dict | list | tuple) and _depth >= MAX_DEPTH:
        return [TOO_DEEP]
    if isinstance(value, dict):
        errors: dict[str, Any] = {}
        for key, item in value.items():
            found = unstorable_values(item, max_text=max_text, _depth=_depth + 1)
            if found:
                errors[str(key)] = found
        if any(isinstance(key, str) and bad_text(key) for key in value):
            errors.setdefault("_schema", []).append(UNSTORABLE)
        return errors
    if isinstance(value, list | tuple):
        messages = {
            message
            for item in value
            for message in _flatten(unstorable_values(item, max_text=max_text, _depth=_depth + 1))
        }
        return sorted(messages) if messages else {}
    return {}


#: one encoder for every check (``json.dumps`` with an argument builds a new one each call)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=str, check_circular=False)


def _surely_storable(value: dict[str, Any], max_text: int | None) -> bool:
    """True when one C-level pass shows nothing to refuse; False means "look field by field" (a NUL
    escape, a lone surrogate, NaN, many brackets or a long text somewhere -- maybe inside a string)."""
    try:
        text = _ENCODER.encode(value)
        text.encode("utf-8")
    except (ValueError, RecursionError, TypeError):  # UnicodeEncodeError is a ValueError
        return False
    return (
        "\\u0000" not in text
        and text.count("[") + text.count("{") <= MAX_DEPTH
        and (max_text is None or len(text) <= max_text)
    )


def _flatten(errors: Any) -> list[str]:
    if isinstance(errors, dict):
        return [message for item in errors.values() for message in _flatten(item)]
    return list(errors)


def _repaired(text: str) -> str:
    return text.replace("\x00", "").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def displayable(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD, so refused input can be shown back to the
    person who typed it (a page is UTF-8; a surrogate cannot be written into it)."""
    if isinstance(value, dict):
        return {displayable(key): displayable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [displayable(item) for item in value]
    if isinstance(value, str) and bad_text(value):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def storable(value: Any) -> Any:
    """A copy every store can hold: NULs dropped, lone surrogates as U+FFFD, NaN and infinities as None.
    For input nobody can be asked to correct (a form mailed by a site's server)."""
    if isinstance(value, str):
        return _repaired(value) if bad_text(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def day_in_range(day: dt.date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY
