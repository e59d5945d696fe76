from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Bitrix24Push",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("call_id", fields.UUIDField(description="our call (perezvon.Call id)")),
                ("connection_id", fields.IntField()),
                ("contact_id", fields.IntField(null=True, description="the Bitrix24 contact found or added by phone")),
                ("entity_type", fields.CharField(default="", description="LEAD or DEAL", max_length=8)),
                ("entity_id", fields.IntField(null=True, description="the Bitrix24 lead or deal added for the lead")),
                (
                    "telephony_call_id",
                    fields.CharField(default="", description="CALL_ID of externalcall.register", max_length=128),
                ),
                ("finished", fields.BooleanField(default=False, description="telephony.externalcall.finish accepted")),
                ("record_file_id", fields.IntField(null=True, description="FILE_ID of the attached recording")),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "bitrix24_pushes",
                "app": "bitrix24",
                "unique_together": (("call_id", "connection_id"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
