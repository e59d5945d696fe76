"""What the reports plugin stores (Tortoise app ``reports``): the digests sent and the problems seen."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class SentDigest(Model):
    """One digest of one site for one period: made once, whatever the number of runs."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField(
        "perezvon.Connection", related_name=False, on_delete=fields.CASCADE
    )
    connection_id: int
    period = fields.CharField(max_length=10, description="daily | weekly")
    period_start = fields.DateField(description="the period's first day, in the site's time zone")
    recipients: fields.JSONField[list[str]] = fields.JSONField(default=list)
    notifiers: fields.JSONField[list[str]] = fields.JSONField(
        default=list, description="the notifiers that have sent it (the others are tried again)"
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True, description="when every notifier had sent it")

    class Meta:
        table = "reports_digests"
        unique_together = (("connection", "period", "period_start"),)


class Problem(Model):
    """One episode of one problem: opened when first seen, alerted once, resolved when it is gone."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyNullableRelation[Any] = fields.ForeignKeyField(
        "perezvon.Connection", related_name=False, null=True, on_delete=fields.CASCADE
    )
    connection_id: int | None
    code = fields.CharField(max_length=32)
    subject = fields.CharField(max_length=128, default="", description="the operator number, the integration")
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    opened_at = fields.DatetimeField()
    alerted_at = fields.DatetimeField(null=True)
    recipients: fields.JSONField[list[str]] = fields.JSONField(default=list)
    notifiers: fields.JSONField[list[str]] = fields.JSONField(default=list)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "reports_problems"
        indexes = (("code", "resolved_at"),)
