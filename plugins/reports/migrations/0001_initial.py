from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0001_initial")]

    initial = True

    operations = [
        ops.CreateModel(
            name="Problem",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
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
                ("code", fields.CharField(max_length=32)),
                (
                    "subject",
                    fields.CharField(default="", description="the operator number, the integration", max_length=128),
                ),
                (
                    "details",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("opened_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("alerted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "recipients",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "notifiers",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("resolved_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "reports_problems",
                "app": "reports",
                "indexes": [Index(fields=["code", "resolved_at"])],
                "pk_attr": "id",
                "table_description": "One episode of one problem: opened when first seen, alerted once, resolved when it is gone.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SentDigest",
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
                ("period", fields.CharField(description="daily | weekly", max_length=10)),
                ("period_start", fields.DateField(description="the period's first day, in the site's time zone")),
                (
                    "recipients",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "notifiers",
                    fields.JSONField(
                        default=list,
                        description="the notifiers that have sent it (the others are tried again)",
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                (
                    "sent_at",
                    fields.DatetimeField(
                        null=True, description="when every notifier had sent it", auto_now=False, auto_now_add=False
                    ),
                ),
            ],
            options={
                "table": "reports_digests",
                "app": "reports",
                "unique_together": (("connection", "period", "period_start"),),
                "pk_attr": "id",
                "table_description": "One digest of one site for one period: made once, whatever the number of runs.",
            },
            bases=["Model"],
        ),
    ]
