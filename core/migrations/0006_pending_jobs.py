from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0005_plugin_enablements")]

    initial = False

    operations = [
        ops.CreateModel(
            name="PendingJob",
            fields=[
                ("job_id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ("function", fields.CharField(max_length=64)),
                (
                    "args",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("queue", fields.CharField(max_length=64)),
                (
                    "due_at",
                    fields.DatetimeField(
                        db_index=True, description="when the job is (next) due", auto_now=False, auto_now_add=False
                    ),
                ),
                (
                    "requeued",
                    fields.IntField(default=0, description="how many times the sweep has queued it again"),
                ),
            ],
            options={
                "table": "pending_jobs",
                "app": "perezvon",
                "pk_attr": "job_id",
                "table_description": "A push or notification still to run, queued again by the sweep if its job is lost.",
            },
            bases=["Model"],
        ),
    ]
