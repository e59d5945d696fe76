"""core/enablement.py: one concept for a plugin switched on per connection, read and written in one place."""

from __future__ import annotations

import logging

from marshmallow import Schema, fields, validate

from perezvon.core import enablement
from perezvon.core.models import Connection, Project


class Inner(Schema):
    token = fields.String(load_default="", metadata={"secret": True, "label": "Token"})
    name = fields.String(load_default="", metadata={"label": "Name"})


class Settings(Schema):
    counter = fields.String(
        required=True, validate=validate.Regexp(r"^\d+$", error="Digits only."), metadata={"label": "Counter"}
    )
    key = fields.String(load_default="", metadata={"secret": True, "label": "Key"})
    inner = fields.Nested(Inner, load_default=dict)
    colour = fields.String(load_default="red", metadata={"label": "Colour"})


class Probe:
    key = "probe"
    settings_schema = Settings


def test_secrets_are_masked_and_a_masked_form_keeps_them_nested_too():
    stored = {"counter": "1", "key": "k-123", "inner": {"token": "t-456", "name": "n"}}
    shown = enablement.mask_secrets(Settings, stored)
    assert shown == {"counter": "1", "key": "****", "inner": {"token": "****", "name": "n"}}
    sent = {"counter": "2", "key": "****", "inner": {"token": "", "name": "m"}}
    assert enablement.merge_secrets(Settings, sent, stored) == {
        "counter": "2",
        "key": "k-123",
        "inner": {"token": "t-456", "name": "m"},
    }
    assert enablement.merge_secrets(Settings, {"counter": "2", "key": "new"}, stored)["key"] == "new"
    assert enablement.secret_fields(Settings) == {"key"}


def test_defaults_are_filled_and_a_plugin_with_required_fields_has_none():
    assert enablement.validated(Probe(), {"counter": "7"}) == {"counter": "7", "key": "", "inner": {}, "colour": "red"}
    assert enablement.default_settings(Probe()) is None


def test_settings_that_no_longer_validate_are_left_out_and_logged_once(caplog):
    caplog.set_level(logging.ERROR, logger="perezvon.enablement")
    stored = {"counter": "12ab", "key": "secret-value"}
    for _ in range(3):
        assert enablement.usable_settings(Probe(), enablement.INTEGRATION, 999_001, stored) is None
    logged = [r.getMessage() for r in caplog.records if r.name == "perezvon.enablement"]
    assert len(logged) == 1 and "probe" in logged[0] and "Digits only." in logged[0]
    assert "secret-value" not in logged[0]  # only the validation messages are logged
    # the admin shows them as stored (secrets masked), with the errors
    values, errors = enablement.settings_for_display(Probe(), stored)
    assert values == {"counter": "12ab", "key": "****"} and errors == {"counter": ["Digits only."]}


async def test_one_row_per_connection_kind_and_key(perezvon_app):
    project = await Project.create(name="Enablements")
    first = await Connection.create(project=project, domain="enable-a.example")
    second = await Connection.create(project=project, domain="enable-b.example")
    # the same key as an application and as an integration: two enablements
    await enablement.enable(first, enablement.APPLICATION, "probe", {"counter": "1"})
    await enablement.enable(first, enablement.INTEGRATION, "probe", {"counter": "2"})
    await enablement.store_settings(second, enablement.INTEGRATION, "probe", {"counter": "3"})
    assert await enablement.keys_on(first) == {"application": ["probe"], "integration": ["probe"]}
    assert await enablement.keys_on(second) == {"application": [], "integration": []}  # stored, still off
    assert await enablement.stored_settings(second, enablement.INTEGRATION, "probe") == {"counter": "3"}
    await enablement.enable(second, enablement.INTEGRATION, "probe")  # switched on, settings kept
    assert await enablement.settings_of_many([first.id, second.id], enablement.INTEGRATION, ["probe", "other"]) == {
        (first.id, "probe"): {"counter": "2"},
        (second.id, "probe"): {"counter": "3"},
    }
    assert await enablement.keys_on_many([first.id, second.id], enablement.APPLICATION) == {first.id: ["probe"]}
    assert await enablement.switch(first, enablement.APPLICATION, "probe", False)
    assert not await enablement.is_on(first, enablement.APPLICATION, "probe")
    assert not await enablement.switch(first, enablement.APPLICATION, "never-set-up", True)
    assert set(await enablement.enablements_of(first)) == {("application", "probe"), ("integration", "probe")}
