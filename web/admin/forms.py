"""HTML forms generated from marshmallow schemas, and form posts loaded back through them.

A plugin's ``settings_schema`` is all the admin needs to edit its settings:
booleans become checkboxes, ``OneOf`` strings selects, numbers number inputs,
nested schemas fieldsets, lists of strings one-per-line text areas, dicts JSON.
Field metadata may carry ``label`` and ``help`` (English message ids, translated
through the plugin's own catalog when the form is a plugin's, else the admin's and
the core's -- docs/plugins.md, "Settings fields") and ``secret``: a secret is never
put into the page -- the input shows ``****`` as a placeholder, and leaving it
empty keeps the stored value (:func:`perezvon.core.enablement.merge_secrets`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from perezvon.core.enablement import MASK, merge_secrets
from perezvon.core.storable import NOT_JSON, BadJson, parse_json
from perezvon.web.admin.i18n import translate

#: how a field's texts (label, help, choice labels) are translated: message id -> text
Translator = Callable[[str], str]


@dataclasses.dataclass
class FieldView:
    name: str
    label: str
    kind: str  # checkbox | number | select | text | textarea | password | group | json
    value: Any = ""
    help: str = ""
    choices: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    children: list[FieldView] = dataclasses.field(default_factory=list)
    required: bool = False
    has_secret: bool = False
    step: str = "any"

    @property
    def shown(self) -> Any:
        """The value as a person reads it (read-only pages): a choice's label, never its stored code."""
        return dict(self.choices).get(str(self.value), self.value) if self.choices else self.value


def _text(value: Any, locale: str, gettext: Translator | None = None) -> str:
    if not value:
        return ""
    return gettext(str(value)) if gettext is not None else translate(str(value), locale)


def label_of(name: str, field: fields.Field, locale: str, gettext: Translator | None = None) -> str:
    label = field.metadata.get("label") or field.metadata.get("title")
    return _text(label or name.replace("_", " ").capitalize(), locale, gettext)


def is_secret(field: fields.Field) -> bool:
    return bool(field.metadata.get("secret"))


def choice_labels(validator: validate.OneOf) -> list[str]:
    """English message ids of a choice's options: the validator's ``labels``, else each code as words
    (``operator_first`` -> "Operator first"), so a stored code is never what a person reads."""
    if validator.labels:
        return [str(label) for label in validator.labels]
    return [_code_as_words(str(code)) if code not in (None, "") else "" for code in validator.choices]


def _code_as_words(code: str) -> str:
    if code.startswith("utm_"):  # UTM parameters keep their standard name: "UTM source"
        return "UTM " + code[4:].replace("_", " ")
    if code in ("url", "ip", "id"):
        return code.upper()
    return code.replace("_", " ").capitalize()


def _choices(field: fields.Field, locale: str, gettext: Translator | None = None) -> list[tuple[str, str]]:
    for validator in getattr(field, "validators", []):
        if isinstance(validator, validate.OneOf):
            labels = choice_labels(validator)
            return [(str(c), _text(label, locale, gettext)) for c, label in zip(validator.choices, labels)]
    return []


def _flat_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                flat.update(_flat_errors(value, path))
            else:
                flat[path] = [str(v) for v in (value if isinstance(value, list) else [value])]
    elif errors:
        flat[prefix or "_schema"] = [str(errors)]
    return flat


def field_views(
    schema: Schema,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    locale: str,
    prefix: str = "",
    gettext: Translator | None = None,
) -> list[FieldView]:
    """The form's fields; ``gettext`` translates their texts (a plugin's catalog), else the admin's catalogs."""
    views = []
    values = values or {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        path = f"{prefix}.{name}" if prefix else name
        value = values.get(name, _default(field))
        view = FieldView(
            name=path,
            label=label_of(name, field, locale, gettext),
            kind="text",
            help=_text(field.metadata.get("help") or field.metadata.get("description") or "", locale, gettext),
            errors=[_text(e, locale, gettext) for e in errors.get(path, [])],
            required=field.required,
        )
        if isinstance(field, fields.Nested):
            nested = field.schema
            view.kind = "group"
            view.children = field_views(nested, value if isinstance(value, dict) else {}, errors, locale, path, gettext)
        elif isinstance(field, fields.Boolean):
            view.kind, view.value = "checkbox", bool(value)
        elif is_secret(field):
            view.kind, view.value, view.has_secret = "password", "", bool(value)
        elif _choices(field, locale, gettext):
            view.kind, view.choices = "select", _choices(field, locale, gettext)
            view.value = "" if value is None else str(value)
        elif isinstance(field, (fields.Integer, fields.Float, fields.Decimal)):
            view.kind, view.value = "number", "" if value is None else value
            view.step = "1" if isinstance(field, fields.Integer) else "any"
        elif isinstance(field, fields.List) and isinstance(field.inner, (fields.String, fields.Integer)):
            view.kind, view.value = "textarea", "\n".join(str(v) for v in (value or []))
        elif isinstance(field, (fields.Dict, fields.List, fields.Raw)) and not isinstance(field, fields.String):
            view.kind, view.value = "json", json.dumps(value, ensure_ascii=False, indent=1) if value is not None else ""
        else:
            view.value = "" if value is None else value
        views.append(view)
    return views


def _default(field: fields.Field) -> Any:
    default = field.load_default
    if callable(default):
        default = default()
    return None if default is fields.missing_ else default


def form_values(schema: Schema, form: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the form post as the dict the schema loads, problems by field path: text that is not JSON).

    A secret sent empty or as ``****`` is left out: :func:`perezvon.core.enablement.merge_secrets`
    puts the stored value back.
    """
    problems: dict[str, list[str]] = {}
    return _raw_from_form(schema, form, "", problems), problems


def _raw_from_form(schema: Schema, form: Any, prefix: str, problems: dict[str, list[str]]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(field, fields.Nested):
            raw[name] = _raw_from_form(field.schema, form, path, problems)
        elif isinstance(field, fields.Boolean):
            raw[name] = form.get(path) in ("on", "true", "1")
        elif is_secret(field):
            sent = (form.get(path) or "").strip()
            if sent and sent != MASK:
                raw[name] = sent
        elif isinstance(field, fields.List) and isinstance(field.inner, (fields.String, fields.Integer)):
            raw[name] = [line.strip() for line in (form.get(path) or "").splitlines() if line.strip()]
        elif isinstance(field, (fields.Dict, fields.List, fields.Raw)) and not isinstance(field, fields.String):
            text = (form.get(path) or "").strip()
            if text:
                try:
                    raw[name] = parse_json(text)
                except BadJson as exc:  # not JSON, NaN, or nested too deeply (Python's parser recurses)
                    problems[path] = ["Not valid JSON." if str(exc) == NOT_JSON else str(exc)]
        else:
            sent = form.get(path)
            if sent is None:
                continue
            if isinstance(field, (fields.Integer, fields.Float, fields.Decimal)) and sent.strip() == "":
                if field.allow_none:
                    raw[name] = None
                continue
            raw[name] = sent
    return raw


def load_form(
    schema: Schema, form: Any, stored: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, list[str]]]:
    """(loaded settings or None, what was sent, errors by dotted path); secrets left empty keep ``stored`` values."""
    raw, problems = form_values(schema, form)
    raw = merge_secrets(schema, raw, stored)
    try:
        loaded = schema.load(raw)
    except ValidationError as exc:
        return None, raw, merge_errors(_flat_errors(exc.messages), problems)
    if problems:
        return None, raw, problems
    return loaded, raw, {}


def merge_errors(errors: dict[str, list[str]], more: dict[str, list[str]]) -> dict[str, list[str]]:
    """Both sets of errors by field path (the schema's, and the form's own problems)."""
    merged = {path: list(messages) for path, messages in errors.items()}
    for path, messages in more.items():
        merged.setdefault(path, []).extend(messages)
    return merged


def flat_errors(errors: Any) -> dict[str, list[str]]:
    return _flat_errors(errors)
