"""What the Bitrix24 plugin stores (Tortoise app ``bitrix24``): how far each call got in Bitrix24.

A push is several REST calls (find or add the contact, add the lead or deal, register the call in
telephony, finish it, attach the recording). Each id Bitrix24 gives back is saved the moment it
arrives, so a retried delivery goes on from the step that failed and never adds a second
contact, lead, deal or telephony call.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Bitrix24Push(Model):
    id = fields.IntField(primary_key=True)
    call_id = fields.UUIDField(description="our call (perezvon.Call id)")
    connection_id = fields.IntField()
    contact_id = fields.IntField(null=True, description="the Bitrix24 contact found or added by phone")
    entity_type = fields.CharField(max_length=8, default="", description="LEAD or DEAL")
    entity_id = fields.IntField(null=True, description="the Bitrix24 lead or deal added for the lead")
    telephony_call_id = fields.CharField(max_length=128, default="", description="CALL_ID of externalcall.register")
    finished = fields.BooleanField(default=False, description="telephony.externalcall.finish accepted")
    record_file_id = fields.IntField(null=True, description="FILE_ID of the attached recording")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bitrix24_pushes"
        unique_together = (("call_id", "connection_id"),)
