from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0001_initial")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Delivery",
            name="attempt_number",
            field=fields.IntField(null=True, description="the attempt an attempt_finished event is about"),
        ),
        ops.AddField(
            model_name="Delivery",
            name="next_try_at",
            field=fields.DatetimeField(
                null=True,
                description="when a failed try is tried again (null: not again)",
                auto_now=False,
                auto_now_add=False,
            ),
        ),
    ]
