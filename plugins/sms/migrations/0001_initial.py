from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0010_call_tag_connection")]

    initial = True

    operations = [
        ops.CreateModel(
            name="SentSms",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("key", fields.CharField(unique=True, max_length=200)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("kind", fields.CharField(description="followup | card | alert", max_length=20)),
                ("phone", fields.CharField(description="E.164", max_length=20)),
                ("state", fields.CharField(default="sending", max_length=10)),
                ("text", fields.CharField(default="", max_length=1000)),
                (
                    "answer",
                    fields.CharField(default="", description="the provider's answer, secrets blanked", max_length=500),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "sms_sent",
                "app": "sms",
                "indexes": [Index(fields=["connection_id", "phone", "kind"])],
                "pk_attr": "id",
                "table_description": "One message, claimed under a unique key before it is sent (``followup:<call>``,",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SmsRecipient",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
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
                ("phone", fields.CharField(description="E.164", max_length=20)),
                ("token", fields.CharField(unique=True, description="random, in /p/sms/stop/<token>", max_length=32)),
                ("opted_out_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "sms_recipients",
                "app": "sms",
                "unique_together": (("connection", "phone"),),
                "pk_attr": "id",
                "table_description": "A visitor number of a connection: the token of its opt-out link, and whether it opted out.",
            },
            bases=["Model"],
        ),
    ]
