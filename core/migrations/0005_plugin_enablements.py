"""One table of plugin enablements: ``app_enablements`` and ``integration_enablements`` become ``plugin_enablements``.

Every row of both old tables is carried over with its connection, switch and
settings; ``kind`` says which table it came from. Rows are copied in their old
order (by id), which is the order the site script lists a connection's apps in.
The SQL is plain ``INSERT ... SELECT``, the same on SQLite and PostgreSQL (the
settings columns have the same type on both sides, so the JSON is copied as is).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

COPY_ROWS = [
    """INSERT INTO plugin_enablements (connection_id, kind, "key", is_on, settings)
       SELECT connection_id, 'application', app_key, is_on, settings FROM app_enablements ORDER BY id""",
    """INSERT INTO plugin_enablements (connection_id, kind, "key", is_on, settings)
       SELECT connection_id, 'integration', integration_key, is_on, settings FROM integration_enablements ORDER BY id""",
]


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0004_delivery_call_index")]

    initial = False

    operations = [
        ops.CreateModel(
            name="PluginEnablement",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="plugins",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("kind", fields.CharField(description="application | integration", max_length=12)),
                ("key", fields.CharField(max_length=64)),
                ("is_on", fields.BooleanField(default=True)),
                (
                    "settings",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
            ],
            options={
                "table": "plugin_enablements",
                "app": "perezvon",
                "unique_together": (("connection", "kind", "key"),),
                "pk_attr": "id",
                "table_description": "One plugin (an application or an integration) switched on or off for a connection, with its settings.",
            },
            bases=["Model"],
        ),
        ops.RunSQL(COPY_ROWS),
        ops.DeleteModel(name="AppEnablement"),
        ops.DeleteModel(name="IntegrationEnablement"),
    ]
