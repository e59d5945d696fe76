"""The reports plugin's deployment settings (``[plugins.reports]`` in plugins.toml)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

DIGEST_CHOICES = ("daily", "weekly", "off")


class ReportsSettings(Schema):
    digest_hour = fields.Integer(
        load_default=9,
        validate=validate.Range(min=0, max=23),
        metadata={"help": "the hour (0-23, in each site's time zone) the daily and weekly digests go out"},
    )
    default_digest = fields.String(
        load_default="daily",
        validate=validate.OneOf(DIGEST_CHOICES),
        metadata={"help": "what a user who never chose gets: daily, weekly or off"},
    )
    operator_failures = fields.Integer(
        load_default=3,
        validate=validate.Range(min=2, max=100),
        metadata={"help": "an operator number failing this many attempts in a row is a problem"},
    )
    delivery_failing_minutes = fields.Integer(
        load_default=60,
        validate=validate.Range(min=5, max=24 * 60),
        metadata={"help": "an integration whose every delivery of a site failed this long is a problem"},
    )
    telephony_minutes = fields.Integer(
        load_default=3,
        validate=validate.Range(min=0, max=24 * 60),
        metadata={"help": "the telephony backend unhealthy this long is a problem"},
    )
