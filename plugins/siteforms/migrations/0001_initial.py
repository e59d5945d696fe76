from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0001_initial")]

    initial = True

    operations = [
        ops.CreateModel(
            name="TechnicalAddress",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.OneToOneField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("local_part", fields.CharField(unique=True, description="lower-case, random", max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "siteforms_addresses",
                "app": "siteforms",
                "pk_attr": "id",
                "table_description": "A connection's technical e-mail address: ``<local_part>@<intake domain>``.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="InboundMessage",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "address",
                    fields.ForeignKeyField(
                        "siteforms.TechnicalAddress",
                        source_field="address_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("received_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                (
                    "message_id",
                    fields.CharField(default="", description="the Message-ID header, as sent", max_length=255),
                ),
                (
                    "dedupe_key",
                    fields.CharField(
                        null=True,
                        description="hash of the Message-ID (or of the message when it has none)",
                        max_length=80,
                    ),
                ),
                (
                    "mail_from",
                    fields.CharField(default="", description="the envelope sender (MAIL FROM)", max_length=320),
                ),
                ("peer", fields.CharField(default="", description="IP address of the sending server", max_length=45)),
                ("subject", fields.CharField(default="", max_length=300)),
                ("size", fields.IntField(description="bytes")),
                (
                    "status",
                    fields.CharField(description="lead | no_phone | duplicate | refused_by_intake", max_length=20),
                ),
                (
                    "lead",
                    fields.ForeignKeyField(
                        "perezvon.Lead",
                        source_field="lead_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "duplicate_of",
                    fields.ForeignKeyField(
                        "siteforms.InboundMessage",
                        source_field="duplicate_of_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "error",
                    fields.CharField(default="", description="why no lead came of it, for support", max_length=500),
                ),
                (
                    "defects",
                    fields.CharField(
                        default="",
                        description="what was wrong with its MIME (the email package's defect names)",
                        max_length=300,
                    ),
                ),
            ],
            options={
                "table": "siteforms_messages",
                "app": "siteforms",
                "unique_together": (("address", "dedupe_key"),),
                "indexes": [Index(fields=["connection_id", "received_at"])],
                "pk_attr": "id",
                "table_description": "One received message for one technical address, and what became of it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="RawMessage",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "message",
                    fields.OneToOneField(
                        "siteforms.InboundMessage",
                        source_field="message_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="raw",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("received_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ("content", fields.BinaryField()),
            ],
            options={
                "table": "siteforms_raw_messages",
                "app": "siteforms",
                "pk_attr": "id",
                "table_description": "The message exactly as received, kept for support until the retention period ends.",
            },
            bases=["Model"],
        ),
    ]
