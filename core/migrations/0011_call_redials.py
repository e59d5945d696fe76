"""Manual "call again" requests on a call: who asked, when, which attempt (docs/calls.md#call-again)."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0010_call_tag_connection")]

    initial = False

    operations = [
        ops.CreateModel(
            name="CallRedial",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="redials",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("attempt_number", fields.IntField(description="the attempt the request placed")),
                ("via", fields.CharField(max_length=5, description="admin | api")),
                (
                    "user",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="user_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="redials",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "api_key",
                    fields.ForeignKeyField(
                        "perezvon.ApiKey",
                        source_field="api_key_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="redials",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "requested_by",
                    fields.CharField(
                        max_length=300,
                        default="",
                        description="who asked, as it read then: the user's name, the key's name and prefix",
                    ),
                ),
                ("due_at", fields.DatetimeField(description="when the attempt is due: now, or the next opening")),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "call_redials",
                "app": "perezvon",
                "indexes": [Index(fields=["call_id", "created_at"])],
                "pk_attr": "id",
                "table_description": (
                    'A manual "call again" of a call: who asked, when, which attempt (docs/calls.md#call-again).'
                ),
            },
            bases=["Model"],
        ),
    ]
