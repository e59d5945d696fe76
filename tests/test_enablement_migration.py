"""Migration 0005 carries every row of the two old enablement tables into ``plugin_enablements``.

The database is built at migration 0004 with rows in both ``app_enablements`` and
``integration_enablements``, then migrated to the latest; every row must be found
in :class:`PluginEnablement` with its kind, switch and settings. It runs on SQLite,
or on PostgreSQL when ``PEREZVON_TEST_DATABASE_URL`` names a server.

Tortoise keeps its state per process and the test session's app is already
connected, so the migrations run in a child process: this file run as a script.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from perezvon.core.testing import drop_databases, fresh_database_url

BEFORE = "perezvon.0004_delivery_call_index"

#: (table, key column, key, is_on, settings) rows written at 0004, in this order
OLD_ROWS = [
    ("app_enablements", "app_key", "widget", True, {"look": {"title": "Перезвоним за 30 секунд"}, "hashes": []}),
    ("app_enablements", "app_key", "leadgen", False, {}),
    ("app_enablements", "app_key", "siteforms", True, {}),
    (
        "integration_enablements",
        "integration_key",
        "webhooks",
        True,
        {"url": "https://example.com/hook", "secret": "s" * 24, "events": ["lead_created"], "timeout": 7.5},
    ),
    (
        "integration_enablements",
        "integration_key",
        "comagic",
        False,
        {"access_token": "k" * 32, "site_id": 77, "successful_tag_id": None},
    ),
    # the same key as an application: kinds keep them apart
    ("integration_enablements", "integration_key", "widget", True, {"goal_prefix": "g_"}),
]


def _literal(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return "'" + str(value).replace("'", "''") + "'"


async def migrate_and_read(database_url: str) -> list[dict]:
    """Migrate to 0004, write the old rows, migrate to the latest, and read the new table."""
    from tortoise import Tortoise, connections
    from tortoise.migrations.api import migrate

    from perezvon.core.db import tortoise_config
    from perezvon.core.models import Connection, PluginEnablement, Project

    config = tortoise_config(database_url)
    await migrate(config=config, target=BEFORE)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    client = connections.get("default")
    project_id = await insert_as_of(client, database_url, Project(name="Before 0005"))
    for domain in ("first.example", "second.example"):
        connection_id = await insert_as_of(client, database_url, Connection(project_id=project_id, domain=domain))
        for table, column, key, on, settings in OLD_ROWS:
            await client.execute_script(
                f"INSERT INTO {table} (connection_id, {column}, is_on, settings) VALUES "
                f"({connection_id}, {_literal(key)}, {_literal(on)}, {_literal(json.dumps(settings))})"
            )
    await Tortoise.close_connections()
    await migrate(config=config)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    try:
        tables = await client_tables(connections.get("default"), database_url)
        rows = (
            await PluginEnablement.all().order_by("id").values("connection__domain", "kind", "key", "is_on", "settings")
        )
    finally:
        await Tortoise.close_connections()
    return [{"tables": tables}, *rows]


async def insert_as_of(client, database_url: str, instance):
    """Insert a model instance into its table as the schema stands now (0004): the columns that later
    migrations add are left out, so a new column on the model does not break this old state."""
    table = instance._meta.db_table
    if database_url.startswith("sqlite"):
        present = {row["name"] for row in await client.execute_query_dict(f'PRAGMA table_info("{table}")')}
    else:
        present = {
            row["column_name"]
            for row in await client.execute_query_dict(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", [table]
            )
        }
    columns, values = [], []
    for name, column in instance._meta.fields_db_projection.items():
        if (name == "id" and getattr(instance, name) is None) or column not in present:  # a made id, or a later column
            continue
        columns.append(f'"{column}"')
        values.append(instance._meta.fields_map[name].to_db_value(getattr(instance, name), instance))
    marks = ", ".join("?" if database_url.startswith("sqlite") else f"${n}" for n in range(1, len(values) + 1))
    rows = await client.execute_query_dict(
        f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks}) RETURNING id', values
    )
    return rows[0]["id"]  # an int, or the UUID given


async def client_tables(client, database_url: str) -> list[str]:
    if database_url.startswith("sqlite"):
        rows = await client.execute_query_dict("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await client.execute_query_dict("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    return sorted(row["name"] for row in rows)


async def test_migration_0005_carries_every_enablement_row(tmp_path):
    url = await fresh_database_url(tmp_path)
    try:
        run = subprocess.run([sys.executable, str(Path(__file__)), url], capture_output=True, text=True, timeout=120)
    finally:
        await drop_databases(only=url)
    assert run.returncode == 0, run.stderr
    tables, *rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert "plugin_enablements" in tables["tables"]
    assert "app_enablements" not in tables["tables"] and "integration_enablements" not in tables["tables"]
    expected = []
    for domain in ("first.example", "second.example"):
        for kind in ("application", "integration"):
            table = "app_enablements" if kind == "application" else "integration_enablements"
            expected += [
                {"connection__domain": domain, "kind": kind, "key": key, "is_on": on, "settings": settings}
                for old_table, _, key, on, settings in OLD_ROWS
                if old_table == table
            ]
    assert sorted(rows, key=json.dumps) == sorted(expected, key=json.dumps)
    # the apps of one connection keep their order (the site script lists them in it)
    first_apps = [
        row["key"] for row in rows if row["connection__domain"] == "first.example" and row["kind"] == "application"
    ]
    assert first_apps == ["widget", "leadgen", "siteforms"]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(migrate_and_read(sys.argv[1])), ensure_ascii=False))
