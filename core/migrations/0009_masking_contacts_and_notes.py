"""Masking clients' contacts per grant, and notes on a call (docs/admin.md#who-may-do-what, #notes-on-a-call).

Every existing grant keeps showing contacts (the default, also as the column's database default,
so the column can be added to a table with rows), so no user sees less after the upgrade.
"""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0008_layout_user_preferences")]

    initial = False

    operations = [
        ops.AddField(
            model_name="AccessGrant",
            name="may_see_contacts",
            field=fields.BooleanField(
                default=True,
                db_default=True,  # the grants already there get it too (NOT NULL on a table with rows)
                description="shows clients' phones and e-mails in full (docs/admin.md#who-may-do-what)",
            ),
        ),
        ops.CreateModel(
            name="CallNote",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="notes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "author",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="author_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="notes",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("text", fields.CharField(max_length=2000)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "call_notes",
                "app": "perezvon",
                "indexes": [Index(fields=["call_id", "created_at"])],
                "pk_attr": "id",
                "table_description": "A user's free-text note on a call (docs/admin.md#notes-on-a-call).",
            },
            bases=["Model"],
        ),
    ]
