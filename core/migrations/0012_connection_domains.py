"""Every domain of every connection as a row with a unique index (docs/calls.md#connection-settings).

The admin checked that no other connection had a domain before saving it, but a check that
reads cannot stop two saves at the same instant: both read "free" and both write. The unique
index on ``connection_domains.domain`` makes the second save fail instead. The rows are filled
here from the connections' primary and extra domains, each in every form a browser sends (a
Cyrillic domain also as its xn-- form); a domain two connections already shared stays with the
older connection, and the newer is named in the log so someone can look at it.
"""

import json
import logging
from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

log = logging.getLogger("perezvon.migrations")


async def fill_domains(apps: Any, schema_editor: Any) -> None:
    from perezvon.core.domains import browser_domains

    client = schema_editor.client
    _, rows = await client.execute_query("SELECT id, domain, extra_domains FROM connections ORDER BY id")
    owner: dict[str, int] = {}
    for row in rows:
        connection_id, primary, extra = row["id"], row["domain"], row["extra_domains"]
        if isinstance(extra, (str, bytes)):  # SQLite keeps JSON as text
            extra = json.loads(extra or "[]")
        for form in dict.fromkeys(browser_domains([primary, *(extra or [])])):
            if form in owner:
                if owner[form] != connection_id:
                    log.warning(
                        "domain %s of connection %s is already connection %s's", form, connection_id, owner[form]
                    )
                continue
            owner[form] = connection_id
    # one parameterised insert per row: the placeholders differ between SQLite ("?") and PostgreSQL ("$1")
    first, second = ("$1", "$2") if client.capabilities.dialect == "postgres" else ("?", "?")
    for form, connection_id in owner.items():
        await client.execute_query(
            f"INSERT INTO connection_domains (connection_id, domain) VALUES ({first}, {second})", [connection_id, form]
        )


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0011_call_redials")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ConnectionDomain",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="domain_rows",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("domain", fields.CharField(max_length=253, unique=True)),
            ],
            options={
                "table": "connection_domains",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": (
                    "A domain of one connection, in one form a browser sends it (docs/calls.md#connection-settings)."
                ),
            },
            bases=["Model"],
        ),
        ops.RunPython(fill_domains, ops.RunPython.noop),
    ]
