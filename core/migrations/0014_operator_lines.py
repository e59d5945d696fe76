"""Operator lines: a ringing strategy per connection and office, a limit of simultaneous calls per
operator number, and the number's run of failures (docs/calls.md#operator-lines)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0013_recording_storage")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Connection",
            name="line_strategy",
            field=fields.CharField(
                max_length=11, default="hunt", db_default="hunt", description="hunt | round_robin | ring_all"
            ),
        ),
        ops.AddField(
            model_name="Connection",
            name="line_wait_seconds",
            field=fields.IntField(
                default=300, db_default=300, description="how long a callback waits for a free operator line"
            ),
        ),
        ops.AddField(
            model_name="Office",
            name="line_strategy",
            field=fields.CharField(max_length=11, default="", db_default="", description="empty: as the connection"),
        ),
        ops.AddField(
            model_name="OperatorNumber",
            name="max_calls",
            field=fields.IntField(default=0, db_default=0, description="simultaneous calls at most (0: no limit)"),
        ),
        ops.AddField(
            model_name="OperatorNumber",
            name="failures_in_row",
            field=fields.IntField(default=0, db_default=0, description="dialled and not answered, in a row"),
        ),
    ]
