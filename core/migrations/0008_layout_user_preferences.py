from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0007_unreadable_times")]

    initial = False

    operations = [
        ops.AddField(
            model_name="User",
            name="preferences",
            field=fields.JSONField(
                default=dict,
                db_default="{}",  # the users already there get it too (NOT NULL on a table with rows)
                description="the user's choices in the admin, e.g. the Calls table's columns",
                encoder=functools.partial(dumps, separators=(",", ":")),
                decoder=loads,
            ),
        ),
    ]
