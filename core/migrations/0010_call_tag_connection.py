"""Each user tag knows its call's connection, so the filters' list of tag names needs no join.

The list of tag names on the Calls table and the dashboard joined every tag to its call; on a
million calls with 50,000 tags that took ~190 ms a page. The connection is copied onto the tag
(filled here for existing tags, and by the admin when a tag is added) and indexed with the name.
"""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

FILL_CONNECTIONS = [
    "UPDATE call_tags SET connection_id = (SELECT calls.connection_id FROM calls WHERE calls.id = call_tags.call_id)",
]


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0009_masking_contacts_and_notes")]

    initial = False

    operations = [
        ops.AddField(model_name="CallTag", name="connection_id", field=fields.IntField(null=True)),
        ops.RunSQL(FILL_CONNECTIONS),
        ops.AddIndex(model_name="CallTag", index=Index(fields=["connection_id", "name"])),
    ]
