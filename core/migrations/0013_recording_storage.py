"""Recording storage: a quota and its policy per project, retention per connection, sizes (docs/recordings.md)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0012_connection_domains")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Project",
            name="recording_quota_gb",
            field=fields.FloatField(null=True, description="null: no quota"),
        ),
        ops.AddField(
            model_name="Project",
            name="recording_policy",
            field=fields.CharField(
                max_length=13, default="delete_oldest", db_default="delete_oldest", description="delete_oldest | keep"
            ),
        ),
        ops.AddField(
            model_name="Project",
            name="recording_bytes",
            field=fields.BigIntField(
                default=0, db_default=0, description="the recordings of the project, as last measured"
            ),
        ),
        ops.AddField(
            model_name="Project",
            name="recordings_over_quota_since",
            field=fields.DatetimeField(null=True, description="kept past the quota since"),
        ),
        ops.AddField(
            model_name="Project",
            name="recording_quota_told",
            field=fields.JSONField(
                default=list,
                db_default="[]",
                description="the notifiers that have told the full-access users of this episode",
            ),
        ),
        ops.AddField(
            model_name="Connection",
            name="recording_retention_days",
            field=fields.IntField(null=True, description="null: PEREZVON_RECORDING_RETENTION_DAYS (0 keeps them)"),
        ),
        ops.AddField(
            model_name="Attempt",
            name="recording_bytes",
            field=fields.BigIntField(
                default=0, db_default=0, description="the size of the recording (0: none, or not measured)"
            ),
        ),
    ]
