"""Plugins switched on per connection, and their settings: the one module that reads and writes them.

An application (the widget, site forms, ...) or an integration (Metrika, webhooks,
...) is switched on for a connection by one :class:`perezvon.core.models.PluginEnablement`
row: its ``kind`` (:data:`APPLICATION` or :data:`INTEGRATION`), its ``key``, ``is_on``
and the settings as stored. Nothing else reads or writes that model; this module

* loads enablements for one connection (:func:`stored_settings`, :func:`keys_on`,
  :func:`enablements_of`) or for many at once (:func:`keys_on_many`,
  :func:`settings_of_many`), so the hot paths (the intake's site cache, the
  deliveries' batched reads) keep one query per group;
* writes them (:func:`enable`, :func:`switch`, :func:`store_settings`);
* fills defaults and validates against the plugin's marshmallow ``settings_schema``
  (:func:`default_settings`, :func:`validated`, :func:`usable_settings`,
  :func:`settings_for_display`);
* keeps secrets out of browsers (:func:`mask_secrets`, :func:`merge_secrets`):
  fields whose metadata says ``secret`` are shown as ``****``, and a form that
  sends ``****`` (or nothing) back keeps the stored value.

Stored settings are the raw dict the admin saved; every read fills the defaults
by loading it through the schema, so a field a plugin adds later takes its
default without a data migration.

**Stored settings that no longer validate** (the plugin was upgraded and its schema
became stricter, or a row was edited by hand) follow one policy everywhere:

* they are never changed or dropped by a read -- only a person saving the
  plugin's settings page replaces them;
* where the settings are used at run time, that one plugin is left out for that
  connection and everything else goes on: the site script skips the app or the
  integration's client events (logged once per connection, plugin and stored
  value -- not on every page view); a delivery is stored as a failed
  ``Delivery`` row whose response is the validation message, and is not retried
  (trying again cannot fix it), so the admin shows it on the call;
* the admin shows the stored values with the validation errors next to their
  fields, and saving needs valid values.

Deciding which plugins are on (the intake queuing deliveries, the site-forms
mail server accepting a message) does not validate: a broken setting shows up
where it is used, as above, instead of silently dropping events.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from marshmallow import Schema, ValidationError, fields

from perezvon.core.models import Connection, PluginEnablement, PluginKind
from perezvon.core.prepared import PreparedValues
from perezvon.core.storable import displayable as displayable  # the admin shows refused settings back
from perezvon.core.storable import unstorable_values

log = logging.getLogger("perezvon.enablement")

APPLICATION = PluginKind.APPLICATION
INTEGRATION = PluginKind.INTEGRATION
KINDS = PluginKind.ALL

#: what a secret looks like in a browser
MASK = "****"


def _connection_id(connection: Connection | int) -> int:
    return connection if isinstance(connection, int) else connection.id


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}: {' or '.join(KINDS)}")
    return kind


# --- schemas, defaults, validation -----------------------------------------------------------


@functools.cache
def schema_instance(schema: type[Schema]) -> Schema:
    """One instance per settings schema: making a marshmallow schema copies all its fields."""
    return schema()


def _schema(plugin_or_schema: Any) -> Schema:
    if isinstance(plugin_or_schema, Schema):
        return plugin_or_schema
    if isinstance(plugin_or_schema, type) and issubclass(plugin_or_schema, Schema):
        return schema_instance(plugin_or_schema)
    return schema_instance(plugin_or_schema.settings_schema)


# What no store can hold is refused by one guard shared with every other entry point (perezvon.core.storable).


def validated(plugin: Any, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The settings loaded through the plugin's schema (defaults filled in); raises ``ValidationError``.

    Values no store can hold (:func:`unstorable_values`) are refused first, by field, so a
    schema that lets any text through cannot carry a NUL into the database."""
    unstorable = unstorable_values(stored or {})
    if unstorable:
        raise ValidationError(unstorable)
    loaded: dict[str, Any] = _schema(plugin).load(stored or {})
    return loaded


def default_settings(plugin: Any) -> dict[str, Any] | None:
    """The settings of a plugin nobody has configured yet, or None when some field must be filled in first."""
    try:
        return validated(plugin, {})
    except ValidationError:
        return None


def invalid_message(plugin: Any, error: ValidationError) -> str:
    """How settings that no longer validate are reported (a delivery's response, a log line)."""
    return f"the {plugin.key} settings of this connection are invalid: {error.messages}"


_reported: set[tuple[int, str, str, str]] = set()


def usable_settings(plugin: Any, kind: str, connection_id: int, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The validated settings, or None when they no longer validate -- logged once per stored value."""
    try:
        return validated(plugin, stored)
    except ValidationError as exc:
        seen = (connection_id, kind, plugin.key, repr(sorted((stored or {}).items())))
        if seen not in _reported:
            if len(_reported) > 10_000:
                _reported.clear()
            _reported.add(seen)
            log.error(
                "connection %s: %s %s left out: %s", connection_id, kind, plugin.key, invalid_message(plugin, exc)
            )
        return None


def settings_for_display(plugin: Any, stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values to show with secrets masked, errors by field) -- stored settings that no longer
    validate are shown as stored, with their errors, so a person can correct them."""
    errors: dict[str, Any]
    try:
        values, errors = validated(plugin, stored), {}
    except ValidationError as exc:
        values, errors = (
            dict(stored or {}),
            exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages},
        )
    return mask_secrets(_schema(plugin), values), errors


# --- secrets ---------------------------------------------------------------------------------


def secret_fields(schema: type[Schema] | Schema) -> set[str]:
    """The names of the schema's top-level fields marked ``metadata={"secret": True}``."""
    return {name for name, field in _schema(schema).fields.items() if field.metadata.get("secret")}


def mask_secrets(schema: type[Schema] | Schema, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as a browser may see them: every non-empty secret replaced by ``****`` (nested too)."""
    instance = _schema(schema)
    shown: dict[str, Any] = {}
    for name, value in (settings or {}).items():
        field = instance.fields.get(name)
        if field is not None and field.metadata.get("secret"):
            shown[name] = MASK if value else value
        elif isinstance(field, fields.Nested) and isinstance(value, dict):
            shown[name] = mask_secrets(field.schema, value)
        else:
            shown[name] = value
    return shown


def merge_secrets(
    schema: type[Schema] | Schema, submitted: dict[str, Any], stored: dict[str, Any] | None
) -> dict[str, Any]:
    """What to validate and save: a secret sent back as ``****``, empty or not at all keeps its stored value."""
    instance = _schema(schema)
    stored = stored or {}
    merged = dict(submitted)
    for name, field in instance.fields.items():
        if field.metadata.get("secret"):
            sent = merged.get(name)
            if (sent is None or (isinstance(sent, str) and sent.strip() in ("", MASK))) and stored.get(name):
                merged[name] = stored[name]
        elif isinstance(field, fields.Nested) and isinstance(merged.get(name), dict):
            inner = stored.get(name)
            merged[name] = merge_secrets(field.schema, merged[name], inner if isinstance(inner, dict) else {})
    return merged


# --- reading -------------------------------------------------------------------------------


async def enablements_of(connection: Connection | int) -> dict[tuple[str, str], PluginEnablement]:
    """Every plugin enablement of one connection (on or off), by ``(kind, key)``."""
    rows = await PluginEnablement.filter(connection_id=_connection_id(connection)).order_by("id")
    return {(row.kind, row.key): row for row in rows}


async def enablement(connection: Connection | int, kind: str, key: str) -> PluginEnablement | None:
    return await PluginEnablement.get_or_none(connection_id=_connection_id(connection), kind=_check_kind(kind), key=key)


async def stored_settings(connection: Connection | int, kind: str, key: str) -> dict[str, Any] | None:
    """The plugin's settings as stored for the connection (on or off), or None when it was never set up."""
    row = await enablement(connection, kind, key)
    return None if row is None else dict(row.settings or {})


async def is_on(connection: Connection | int, kind: str, key: str) -> bool:
    return await PluginEnablement.exists(
        connection_id=_connection_id(connection), kind=_check_kind(kind), key=key, is_on=True
    )


#: read for every attempt and notification: its SQL built once (core/prepared.py)
_KEYS_ON = PreparedValues(
    PluginEnablement,
    lambda connection_id: (
        PluginEnablement.filter(connection_id=connection_id, is_on=True).order_by("id").values_list("kind", "key")
    ),
    connection_id="connection_id",
)

#: the same for many connections and one kind (the deliveries of a group of ended calls)
_KEYS_ON_MANY = PreparedValues(
    PluginEnablement,
    lambda ids, kind: (
        PluginEnablement.filter(connection_id__in=ids, kind=kind, is_on=True)
        .order_by("id")
        .values_list("connection_id", "key")
    ),
    ids="connection_id",
    kind="kind",
)


async def keys_on(connection: Connection | int) -> dict[str, list[str]]:
    """The keys of the plugins switched on for one connection, by kind, in the order they were set up."""
    found: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind, key in await _KEYS_ON.all(connection_id=_connection_id(connection)):
        found.setdefault(kind, []).append(key)
    return found


async def keys_on_many(connection_ids: Iterable[int], kind: str) -> dict[int, list[str]]:
    """For many connections at once (one query): the keys of one kind switched on, by connection."""
    ids = list(set(connection_ids))
    found: dict[int, list[str]] = {}
    if not ids:
        return found
    for connection_id, key in await _KEYS_ON_MANY.all(ids=ids, kind=_check_kind(kind)):
        found.setdefault(connection_id, []).append(key)
    return found


async def settings_on(connection: Connection | int, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """``(key, stored settings)`` of the plugins of one kind switched on for a connection, in set-up order."""
    return [
        (key, settings or {})
        for key, settings in await PluginEnablement.filter(
            connection_id=_connection_id(connection), kind=_check_kind(kind), is_on=True
        )
        .order_by("id")
        .values_list("key", "settings")
    ]


async def settings_of_many(
    connection_ids: Iterable[int], kind: str, keys: Iterable[str]
) -> dict[tuple[int, str], dict[str, Any]]:
    """For many connections and keys at once (one query): the stored settings of the plugins switched
    on, by ``(connection id, key)``; a plugin that is off or never set up is absent."""
    ids, wanted = list(set(connection_ids)), list(set(keys))
    if not ids or not wanted:
        return {}
    return {
        (connection_id, key): settings or {}
        for connection_id, key, settings in await PluginEnablement.filter(
            connection_id__in=ids, kind=_check_kind(kind), key__in=wanted, is_on=True
        ).values_list("connection_id", "key", "settings")
    }


# --- writing -------------------------------------------------------------------------------


async def enable(
    connection: Connection | int, kind: str, key: str, settings: dict[str, Any] | None = None
) -> PluginEnablement:
    """Switch a plugin on for a connection. ``settings`` (already loaded through the plugin's schema)
    replace the stored ones when given; otherwise stored settings are kept, and a plugin never set up
    starts with none stored (every read fills the schema's defaults)."""
    connection_id = _connection_id(connection)
    row, created = await PluginEnablement.get_or_create(
        connection_id=connection_id,
        kind=_check_kind(kind),
        key=key,
        defaults={"is_on": True, "settings": settings or {}},
    )
    if not created:
        changes: dict[str, Any] = {"is_on": True}
        if settings is not None:
            changes["settings"] = settings
        await PluginEnablement.filter(id=row.id).update(**changes)
        row.is_on = True
        row.settings = settings if settings is not None else row.settings
    return row


async def switch(connection: Connection | int, kind: str, key: str, on: bool) -> bool:
    """Switch a plugin that has been set up on or off; False when it never was (nothing is stored)."""
    return bool(
        await PluginEnablement.filter(connection_id=_connection_id(connection), kind=_check_kind(kind), key=key).update(
            is_on=on
        )
    )


async def store_settings(connection: Connection | int, kind: str, key: str, settings: dict[str, Any]) -> None:
    """Store a plugin's settings (already validated) for a connection; a plugin never set up stays off."""
    connection_id = _connection_id(connection)
    row, created = await PluginEnablement.get_or_create(
        connection_id=connection_id, kind=_check_kind(kind), key=key, defaults={"is_on": False, "settings": settings}
    )
    if not created:
        await PluginEnablement.filter(id=row.id).update(settings=settings)
