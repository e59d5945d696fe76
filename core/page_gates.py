"""Where an app may show, known before its code is fetched (docs/site-script.md#pages-an-app-may-show-on).

The loader knows only the page's address when it decides which apps' code to fetch. An app
describes the pages it can show on as a :data:`PageGate`: alternatives, each a list of
:class:`UrlCondition` that must all hold; the loader fetches the app's code only where one
alternative holds (``None``: on any page; ``[]``: on no page, so the app is left out).

Whatever the loader cannot decide -- a UTM field, the traffic channel, a rule's period -- counts
as "may hold", so a gate only ever skips pages where the app certainly stays hidden. The
operators mean what the site runtime's ``matches`` means (lower-cased; "equals" ignores one
trailing slash), and the loader's ``P.g`` evaluates the encoded form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

#: the runtime's operators -> (loader code, negated)
_CODES = {
    "contains": (0, False),
    "not_contains": (0, True),
    "equals": (1, False),
    "not_equals": (1, True),
    "starts_with": (2, False),
}


@dataclasses.dataclass(frozen=True)
class UrlCondition:
    """A condition on the page address, with one of the runtime's operators (or its opposite)."""

    operator: str
    value: str
    negated: bool = False

    def __post_init__(self) -> None:
        if self.operator not in _CODES:
            raise ValueError(f"unknown operator {self.operator!r}")

    def encoded(self) -> list[Any]:
        """The loader's form: ``[code, lower-cased value]``, ``1`` appended when negated."""
        code, negated = _CODES[self.operator]
        negated ^= self.negated
        value = self.value.lower()
        if code == 1:  # the loader compares the address without one trailing slash, as the runtime does
            value = value.removesuffix("/")
        return [code, value, 1] if negated else [code, value]


#: alternatives of conditions that must all hold; None: any page; []: no page
PageGate = list[list[UrlCondition]] | None


def url_condition(rule: Mapping[str, Any]) -> UrlCondition | None:
    """A rule's condition when the loader can decide it: on the address, without a period."""
    if (rule.get("target") or "url") != "url" or rule.get("date_from") or rule.get("date_to"):
        return None
    return UrlCondition(rule.get("operator") or "contains", str(rule.get("value") or ""))


def hidden_where(rules: Iterable[Mapping[str, Any]]) -> PageGate:
    """The gate of weighted show/hide rules (the runtime's ``bestRule``: the heaviest matching rule
    decides, the first listed among equals; no matching rule: shown).

    A hiding rule the loader can decide hides the app for certain where it matches when every
    showing rule is lighter, or as heavy and listed after it: whichever rule then wins hides too.
    The gate is "none of those match"."""
    listed = list(rules)
    showing = [(int(r.get("weight") or 0), i) for i, r in enumerate(listed) if r.get("show", True) is not False]
    certain = []
    for i, rule in enumerate(listed):
        if rule.get("show", True) is not False:
            continue
        condition = url_condition(rule)
        weight = int(rule.get("weight") or 0)
        if condition is not None and all(weight > w or (weight == w and i < j) for w, j in showing):
            certain.append(dataclasses.replace(condition, negated=not condition.negated))
    return [certain] if certain else None


def shown_where_any(alternatives: Iterable[Iterable[Mapping[str, Any]]]) -> PageGate:
    """The gate of an app shown where all of one alternative's conditions match (a lead
    generator's promotions, each with its filters). Conditions the loader cannot decide are left
    out of their alternative; an alternative with none left holds on any page."""
    gate: list[list[UrlCondition]] = []
    for filters in alternatives:
        decidable = [c for c in (url_condition(f) for f in filters) if c is not None]
        if not decidable:
            return None
        gate.append(decidable)
    return gate


def encoded(gate: PageGate) -> list[list[list[Any]]] | None:
    return None if gate is None else [[c.encoded() for c in alternative] for alternative in gate]
