"""What the amoCRM plugin stores (Tortoise app ``amocrm``): OAuth tokens, sealed, and the ids amoCRM gave."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from perezvon.api import Lead


class Grant(Model):
    """The tokens of one authorization: an amoCRM account, an integration (client id) and the code it gave.

    Keyed by a fingerprint (an HMAC under the deployment's key), so connections set up with the same
    code share one pair of tokens -- amoCRM rotates the refresh token, two copies could not both live.
    Both tokens are Fernet-encrypted with a key derived from the deployment's secret key.
    """

    id = fields.IntField(primary_key=True)
    fingerprint = fields.CharField(max_length=64, unique=True, description="HMAC of account, client id and code")
    access_token = fields.TextField(description="Fernet-encrypted")
    refresh_token = fields.TextField(description="Fernet-encrypted, replaced by amoCRM on every refresh")
    expires_at = fields.DatetimeField(description="when the access token expires")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "amocrm_grants"


class SentLead(Model):
    """What amoCRM made of one lead, step by step, so a retried delivery never creates anything twice."""

    id = fields.IntField(primary_key=True)
    lead: fields.ForeignKeyRelation[Lead] = fields.ForeignKeyField(
        "perezvon.Lead", related_name=False, on_delete=fields.CASCADE
    )
    lead_id: str
    account = fields.CharField(max_length=255, description="the amoCRM account's base URL")
    contact_id = fields.BigIntField(null=True)
    contact_created = fields.BooleanField(default=False, description="made by us, not found by phone")
    amo_lead_id = fields.BigIntField(null=True)
    lead_note_id = fields.BigIntField(null=True, description="the note with source, page and UTM")
    call_note_id = fields.BigIntField(null=True)

    class Meta:
        table = "amocrm_leads"
        unique_together = (("lead", "account"),)
