from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0001_initial")]

    initial = True

    operations = [
        ops.CreateModel(
            name="Grant",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "fingerprint",
                    fields.CharField(unique=True, description="HMAC of account, client id and code", max_length=64),
                ),
                ("access_token", fields.TextField(description="Fernet-encrypted", unique=False)),
                (
                    "refresh_token",
                    fields.TextField(description="Fernet-encrypted, replaced by amoCRM on every refresh", unique=False),
                ),
                (
                    "expires_at",
                    fields.DatetimeField(
                        description="when the access token expires", auto_now=False, auto_now_add=False
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "amocrm_grants",
                "app": "amocrm",
                "pk_attr": "id",
                "table_description": "The tokens of one authorization: an amoCRM account, an integration (client id) and the code it gave.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SentLead",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "lead",
                    fields.ForeignKeyField(
                        "perezvon.Lead",
                        source_field="lead_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("account", fields.CharField(description="the amoCRM account's base URL", max_length=255)),
                ("contact_id", fields.BigIntField(null=True)),
                ("contact_created", fields.BooleanField(default=False, description="made by us, not found by phone")),
                ("amo_lead_id", fields.BigIntField(null=True)),
                ("lead_note_id", fields.BigIntField(null=True, description="the note with source, page and UTM")),
                ("call_note_id", fields.BigIntField(null=True)),
            ],
            options={
                "table": "amocrm_leads",
                "app": "amocrm",
                "unique_together": (("lead", "account"),),
                "pk_attr": "id",
                "table_description": "What amoCRM made of one lead, step by step, so a retried delivery never creates anything twice.",
            },
            bases=["Model"],
        ),
    ]
