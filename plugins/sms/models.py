"""What the SMS plugin stores (Tortoise app ``sms``): every message it sent or is sending, and
each visitor number's opt-out token and state, per connection."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from perezvon.api import Connection


class SentState:
    SENDING = "sending"  # claimed by a job that is sending it now
    SENT = "sent"  # the provider accepted it: never sent again
    FAILED = "failed"  # the provider refused it or could not be reached: a retry may claim it again
    ALL = (SENDING, SENT, FAILED)


class SentSms(Model):
    """One message, claimed under a unique key before it is sent (``followup:<call>``,
    ``card:<call>``, ``alert:<kind>:<call>:<phone>``), so no retry nor duplicate event sends it twice."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=200, unique=True)
    connection: fields.ForeignKeyNullableRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name=False, null=True, on_delete=fields.CASCADE
    )
    connection_id: int | None
    kind = fields.CharField(max_length=20, description="followup | card | alert")
    phone = fields.CharField(max_length=20, description="E.164")
    state = fields.CharField(max_length=10, default=SentState.SENDING)
    text = fields.CharField(max_length=1000, default="")
    answer = fields.CharField(max_length=500, default="", description="the provider's answer, secrets blanked")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sms_sent"
        indexes = (("connection_id", "phone", "kind"),)


class SmsRecipient(Model):
    """A visitor number of a connection: the token of its opt-out link, and whether it opted out."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name=False, on_delete=fields.CASCADE
    )
    connection_id: int
    phone = fields.CharField(max_length=20, description="E.164")
    token = fields.CharField(max_length=32, unique=True, description="random, in /p/sms/stop/<token>")
    opted_out_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sms_recipients"
        unique_together = (("connection", "phone"),)
