"""Deployment settings of the Asterisk plugin (``[plugins.asterisk]`` in plugins.toml)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

#: what a dial string may contain besides the number placeholder: tech/endpoint/host names
_DIAL_STRING = re.compile(r"^[A-Za-z0-9]+/[A-Za-z0-9_.:@/{}+-]*\{number\}[A-Za-z0-9_.:@/{}+-]*$")
#: Asterisk context names as we accept them: nothing a dialplan would interpret
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,79}$")


def _absolute_dir(value: str | None) -> None:
    if value is None:
        return
    if not PurePosixPath(value).is_absolute() or not re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        raise ValidationError("An absolute path of letters, digits and _ . / - only.")


class AsteriskSettings(Schema):
    host = fields.String(
        load_default="127.0.0.1",
        validate=validate.Length(min=1, max=255),
        metadata={"help": "where Asterisk's manager interface listens"},
    )
    port = fields.Integer(load_default=5038, validate=validate.Range(min=1, max=65535))
    username = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=80),
        metadata={"help": "the manager.conf user (docs/asterisk.md); required unless [[plugins.asterisk.servers]]"},
    )
    secret = fields.String(
        load_default=None,
        load_only=True,
        validate=validate.Length(min=1, max=255),
        metadata={"secret": True, "help": "its secret"},
    )
    dial_string = fields.String(
        load_default="PJSIP/{number}@trunk", metadata={"help": "how a number is dialled; {number} is E.164 without '+'"}
    )
    number_format = fields.String(
        load_default="e164_digits",
        validate=validate.OneOf(["e164_digits", "e164_plus", "national_8"]),
        metadata={"help": "{number} as 79161234567, +79161234567 or 89161234567"},
    )
    capacity = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=100_000),
        metadata={"help": "the most calls at once on this PBX; 0 = no limit"},
    )
    servers = fields.List(
        fields.Nested(lambda: PbxSettings()),
        load_default=list,
        metadata={"help": "a pool of PBXs (docs/asterisk.md#a-pool-of-pbxs); empty = the one server above"},
    )
    context = fields.String(
        load_default="perezvon-leg",
        validate=validate.Regexp(_NAME),
        metadata={"help": "the shipped dialplan context (docs/asterisk.md)"},
    )
    platform_caller_id = fields.String(
        load_default="",
        validate=validate.Regexp(r"^\+?\d{0,20}$"),
        metadata={"help": "caller id when no substitution rule applies; empty = the trunk's own"},
    )
    sounds_dir = fields.String(
        load_default=None,
        allow_none=True,
        validate=_absolute_dir,
        metadata={
            "help": "a directory Asterisk can read: announcements are copied "
            "there (as Perezvon sees it); default <data dir>/asterisk-sounds"
        },
    )
    asterisk_sounds_dir = fields.String(
        load_default=None,
        allow_none=True,
        validate=_absolute_dir,
        metadata={"help": "the same directory as Asterisk sees it (default: sounds_dir)"},
    )
    recordings_dir = fields.String(
        load_default=None,
        allow_none=True,
        validate=_absolute_dir,
        metadata={"help": "where MixMonitor writes, as Perezvon sees it; default <data dir>/asterisk-recordings"},
    )
    asterisk_recordings_dir = fields.String(
        load_default=None,
        allow_none=True,
        validate=_absolute_dir,
        metadata={"help": "the same directory as Asterisk sees it (default: recordings_dir)"},
    )
    answer_wait_seconds = fields.Float(
        load_default=10.0,
        validate=validate.Range(min=0.5, max=120),
        metadata={
            "help": "how long an answered leg may take to reach the dialplan's Async AGI before it counts as a fault"
        },
    )
    ping_interval_seconds = fields.Float(
        load_default=5.0,
        validate=validate.Range(min=0.05, max=300),
        metadata={"help": "how often the link is checked with a Ping"},
    )
    ping_timeout_seconds = fields.Float(
        load_default=3.0,
        validate=validate.Range(min=0.05, max=60),
        metadata={"help": "a Ping unanswered this long means a silent link"},
    )
    reconnect_min_seconds = fields.Float(load_default=0.5, validate=validate.Range(min=0.01, max=60))
    reconnect_max_seconds = fields.Float(load_default=30.0, validate=validate.Range(min=0.1, max=3600))
    connect_wait_seconds = fields.Float(
        load_default=10.0,
        validate=validate.Range(min=0, max=300),
        metadata={
            "help": "an attempt waits this long for a link that is down before it ends as 'Asterisk unreachable'"
        },
    )

    @validates("dial_string")
    def _dial_string(self, value: str, **_) -> None:
        if (
            not _DIAL_STRING.match(value)
            or value.count("{number}") != 1
            or value.replace("{number}", "").count("{")
            or value.replace("{number}", "").count("}")
        ):
            raise ValidationError(
                'Like "PJSIP/{number}@trunk": a technology, "/", and {number} once; '
                "letters, digits and _ . : @ / + - only."
            )

    @validates_schema
    def _ranges(self, data, **_) -> None:
        if not data["servers"]:  # one server: the settings of old, its credentials required
            for key in ("username", "secret"):
                if not data.get(key):
                    raise ValidationError("Missing data for required field.", key)
        names = [server["name"] for server in data["servers"]]
        if len(set(names)) != len(names):
            raise ValidationError("Each server needs a name of its own.", "servers")
        owners: dict[str, str] = {}
        for server in data["servers"]:
            for number in server["caller_ids"]:
                if owners.setdefault(number, server["name"]) != server["name"]:
                    # one caller id, one trunk: two owners would let the pool pick the wrong one
                    raise ValidationError(
                        f"{number} is listed by {owners[number]!r} and {server['name']!r}: one trunk owns it.",
                        "servers",
                    )
        if data["reconnect_min_seconds"] > data["reconnect_max_seconds"]:
            raise ValidationError("Must not exceed reconnect_max_seconds.", "reconnect_min_seconds")
        if data["ping_timeout_seconds"] > data["ping_interval_seconds"] * 10:
            raise ValidationError("Keep it within ten ping intervals.", "ping_timeout_seconds")


def _dial_string_ok(value: str) -> bool:
    return bool(
        _DIAL_STRING.match(value)
        and value.count("{number}") == 1
        and not value.replace("{number}", "").count("{")
        and not value.replace("{number}", "").count("}")
    )


class PbxSettings(Schema):
    """One PBX of the pool (``[[plugins.asterisk.servers]]``); what it leaves out is taken from
    ``[plugins.asterisk]`` (docs/asterisk.md#a-pool-of-pbxs)."""

    name = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,40}$"),
        metadata={"help": "how logs, /healthz and the reasons name this PBX"},
    )
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(load_default=5038, validate=validate.Range(min=1, max=65535))
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    secret = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=255))
    dial_string = fields.String(load_default=None, metadata={"help": "default: the one of [plugins.asterisk]"})
    number_format = fields.String(
        load_default=None, validate=validate.OneOf(["e164_digits", "e164_plus", "national_8"])
    )
    capacity = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=100_000),
        metadata={"help": "the most calls at once on this PBX; 0 = no limit"},
    )
    caller_ids = fields.List(
        fields.String(validate=validate.Regexp(r"^\+[1-9]\d{5,14}$", error="An E.164 number, like +74951234567.")),
        load_default=list,
        metadata={"help": "the numbers this PBX's trunk owns: calls shown as one of them go out only here"},
    )

    @validates("dial_string")
    def _dial_string(self, value: str | None, **_) -> None:
        if value is not None and not _dial_string_ok(value):
            raise ValidationError(
                'Like "PJSIP/{number}@trunk": a technology, "/", and {number} once; '
                "letters, digits and _ . : @ / + - only."
            )
