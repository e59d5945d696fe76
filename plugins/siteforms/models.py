"""What the site-forms plugin stores (Tortoise app ``siteforms``)."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model

from perezvon.api import DEFAULT_LOCALE, Connection, Lead
from perezvon.plugins.siteforms.texts import text


class MessageStatus:
    """What became of a received message, per technical address it was sent to."""

    LEAD = "lead"  # a lead went to the intake (it may be the intake's duplicate of a recent lead)
    NO_PHONE = "no_phone"  # kept and shown, never called
    DUPLICATE = "duplicate"  # the same Message-ID reached the same address before: no second lead
    REFUSED_BY_INTAKE = "refused_by_intake"  # the intake said no (e.g. the site was switched off); kept with the reason
    TEST = "test"  # the admin's "send a test e-mail" check: read like a form, never submitted
    ALL = (LEAD, NO_PHONE, DUPLICATE, REFUSED_BY_INTAKE, TEST)
    #: kept without a lead, and somebody should look: listed on the connection's page, recipients told
    NEED_A_LOOK = (NO_PHONE, REFUSED_BY_INTAKE)

    #: English message ids shown to admins; translated by the plugin's catalog, else the core's
    LABELS = {
        LEAD: "Lead created",
        NO_PHONE: "No phone found",
        DUPLICATE: "Duplicate message",
        REFUSED_BY_INTAKE: "Refused by the intake",
        TEST: "Test e-mail",
    }

    @classmethod
    def label(cls, status: str, locale: str = DEFAULT_LOCALE) -> str:
        return text(cls.LABELS.get(status, status), locale)


class TechnicalAddress(Model):
    """A connection's technical e-mail address: ``<local_part>@<intake domain>``.

    The domain is a deployment setting, so only the random local part is
    stored; it never changes once the site's forms send to it.
    """

    id = fields.IntField(primary_key=True)
    connection: fields.OneToOneRelation[Connection] = fields.OneToOneField(
        "perezvon.Connection", related_name=False, on_delete=fields.CASCADE
    )
    connection_id: int
    local_part = fields.CharField(max_length=64, unique=True, description="lower-case, random")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "siteforms_addresses"


class InboundMessage(Model):
    """One received message for one technical address, and what became of it.

    ``dedupe_key`` is set on the first copy only (NULL on duplicates and never
    equal between two rows of one address), so the unique constraint lets one
    lead come of a message however often the sender delivers it.
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    address: fields.ForeignKeyRelation[TechnicalAddress] = fields.ForeignKeyField(
        "siteforms.TechnicalAddress", related_name="messages", on_delete=fields.CASCADE
    )
    address_id: int
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name=False, on_delete=fields.CASCADE
    )
    connection_id: int
    received_at = fields.DatetimeField(db_index=True)
    message_id = fields.CharField(max_length=255, default="", description="the Message-ID header, as sent")
    dedupe_key = fields.CharField(
        max_length=80, null=True, description="hash of the Message-ID (or of the message when it has none)"
    )
    mail_from = fields.CharField(max_length=320, default="", description="the envelope sender (MAIL FROM)")
    peer = fields.CharField(max_length=45, default="", description="IP address of the sending server")
    subject = fields.CharField(max_length=300, default="")
    size = fields.IntField(description="bytes")
    # (and "test": the admin's check; the description is left as migrated)
    status = fields.CharField(max_length=20, description="lead | no_phone | duplicate | refused_by_intake")
    lead: fields.ForeignKeyNullableRelation[Lead] = fields.ForeignKeyField(
        "perezvon.Lead", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    lead_id: uuid.UUID | None
    # the call model is not part of perezvon.api: only its id is used here
    call: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "perezvon.Call", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    call_id: uuid.UUID | None
    duplicate_of: fields.ForeignKeyNullableRelation[InboundMessage] = fields.ForeignKeyField(
        "siteforms.InboundMessage", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    duplicate_of_id: uuid.UUID | None
    error = fields.CharField(max_length=500, default="", description="why no lead came of it, for support")
    defects = fields.CharField(
        max_length=300, default="", description="what was wrong with its MIME (the email package's defect names)"
    )

    class Meta:
        table = "siteforms_messages"
        unique_together = (("address", "dedupe_key"),)
        indexes = (("connection_id", "received_at"),)

    def status_label(self, locale: str = DEFAULT_LOCALE) -> str:
        return MessageStatus.label(self.status, locale)


class RawMessage(Model):
    """The message exactly as received, kept for support until the retention period ends.

    (No semicolons in model docstrings: Tortoise's SQLite schema editor splits
    the table comment it makes of them into two statements.)
    """

    # its own key: Tortoise 1.1's migrations mis-record a one-to-one primary key (pk_attr)
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    message: fields.OneToOneRelation[InboundMessage] = fields.OneToOneField(
        "siteforms.InboundMessage", related_name="raw", on_delete=fields.CASCADE
    )
    message_id: uuid.UUID
    received_at = fields.DatetimeField(db_index=True)
    content = fields.BinaryField()

    class Meta:
        table = "siteforms_raw_messages"
