"""HTML forms generated from marshmallow schemas, and form posts loaded back through them.

A plugin's ``settings_schema`` is all the admin needs to edit its settings:
booleans become checkboxes, ``OneOf`` strings selects, numbers number inputs,
nested schemas fieldsets, lists of strings one-per-line text areas, dicts JSON.
Field metadata may carry ``label`` and ``help`` (a string, translated through
the catalogs, or ``{"ru": ..., "en": ...}``) and ``secret``: a secret is never
put into the page -- the input shows ``****`` as a placeholder, and leaving it
empty keeps the stored value.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from perezvon.web.admin.i18n import translate

MASK = "****"


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


def _text(value: Any, locale: str) -> str:
    if isinstance(value, dict):
        return str(value.get(locale) or value.get("en") or next(iter(value.values()), ""))
    return translate(str(value), locale) if value else ""


def label_of(name: str, field: fields.Field, locale: str) -> str:
    label = field.metadata.get("label") or field.metadata.get("title")
    if label:
        return _text(label, locale)
    return translate(name.replace("_", " ").capitalize(), locale)


def is_secret(field: fields.Field) -> bool:
    return bool(field.metadata.get("secret"))


def _choices(field: fields.Field, locale: str) -> list[tuple[str, str]]:
    for validator in getattr(field, "validators", []):
        if isinstance(validator, validate.OneOf):
            labels = validator.labels if validator.labels else validator.choices
            return [(str(c), _text(label, locale) if isinstance(label, dict) else translate(str(label), locale))
                    for c, label in zip(validator.choices, labels)]
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


def field_views(schema: Schema, values: dict[str, Any], errors: dict[str, list[str]], locale: str,
                prefix: str = "") -> list[FieldView]:
    views = []
    values = values or {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        path = f"{prefix}.{name}" if prefix else name
        value = values.get(name, _default(field))
        view = FieldView(name=path, label=label_of(name, field, locale), kind="text",
                         help=_text(field.metadata.get("help") or field.metadata.get("description") or "", locale),
                         errors=[translate(e, locale) for e in errors.get(path, [])], required=field.required)
        if isinstance(field, fields.Nested):
            nested = field.schema
            view.kind = "group"
            view.children = field_views(nested, value if isinstance(value, dict) else {}, errors, locale, path)
        elif isinstance(field, fields.Boolean):
            view.kind, view.value = "checkbox", bool(value)
        elif is_secret(field):
            view.kind, view.value, view.has_secret = "password", "", bool(value)
        elif _choices(field, locale):
            view.kind, view.choices, view.value = "select", _choices(field, locale), "" if value is None else str(value)
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


def raw_from_form(schema: Schema, form: Any, stored: dict[str, Any] | None, prefix: str = "",
                  problems: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The form post as the dict the schema loads; secrets left empty keep ``stored`` values."""
    stored = stored or {}
    raw: dict[str, Any] = {}
    problems = problems if problems is not None else {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(field, fields.Nested):
            raw[name] = raw_from_form(field.schema, form, stored.get(name) if isinstance(stored.get(name), dict)
                                      else {}, path, problems)
        elif isinstance(field, fields.Boolean):
            raw[name] = form.get(path) in ("on", "true", "1")
        elif is_secret(field):
            sent = (form.get(path) or "").strip()
            if sent and sent != MASK:
                raw[name] = sent
            elif stored.get(name) not in (None, ""):
                raw[name] = stored[name]
        elif isinstance(field, fields.List) and isinstance(field.inner, (fields.String, fields.Integer)):
            raw[name] = [line.strip() for line in (form.get(path) or "").splitlines() if line.strip()]
        elif isinstance(field, (fields.Dict, fields.List, fields.Raw)) and not isinstance(field, fields.String):
            text = (form.get(path) or "").strip()
            if text:
                try:
                    raw[name] = json.loads(text)
                except ValueError:
                    problems[path] = ["Not valid JSON."]
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


def load_form(schema: Schema, form: Any, stored: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                              dict[str, Any], dict[str, list[str]]]:
    """(loaded settings or None, what was sent, errors by dotted path)."""
    problems: dict[str, list[str]] = {}
    raw = raw_from_form(schema, form, stored, problems=problems)
    try:
        loaded = schema.load(raw)
    except ValidationError as exc:
        errors = _flat_errors(exc.messages)
        for path, messages in problems.items():
            errors.setdefault(path, []).extend(messages)
        return None, raw, errors
    if problems:
        return None, raw, problems
    return loaded, raw, {}


def flat_errors(errors: Any) -> dict[str, list[str]]:
    return _flat_errors(errors)


def masked(schema: Schema, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings safe to show: secrets replaced by ``****`` (never sent to a browser)."""
    shown = {}
    for name, value in (settings or {}).items():
        field = schema.fields.get(name)
        if field is not None and is_secret(field):
            shown[name] = MASK if value else ""
        elif field is not None and isinstance(field, fields.Nested) and isinstance(value, dict):
            shown[name] = masked(field.schema, value)
        else:
            shown[name] = value
    return shown
