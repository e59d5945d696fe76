from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0003_api_keys")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["call_id", "integration_key"]),
        ),
    ]
