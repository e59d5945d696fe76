from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0002_deliveries")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ApiKey",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="api_keys",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(default="", max_length=100)),
                (
                    "prefix",
                    fields.CharField(
                        description="the first characters, shown so the owner can tell keys apart", max_length=12
                    ),
                ),
                ("key_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("last_used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_keys",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "A user's key for the read API (``Authorization: Bearer ...``). Only its SHA-256 is stored:",
            },
            bases=["Model"],
        ),
    ]
