"""A database made by the first release, with rows in its tables, upgrades to the latest schema.

A migration that adds a NOT NULL column with only a Python default passes on an empty
database and fails on a real one ("Cannot add a NOT NULL column with default value NULL",
"column ... contains null values"): every column a migration adds to a table that may
hold rows needs a database default. Runs on SQLite, or on PostgreSQL when
``PEREZVON_TEST_DATABASE_URL`` names a server; in a child process, as
tests/test_enablement_migration.py explains (Tortoise keeps its state per process).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import traceback
import uuid
from pathlib import Path

from perezvon.core.testing import drop_databases, fresh_database_url

FIRST = "perezvon.0001_initial"


async def upgrade_with_rows(database_url: str) -> dict[str, int]:
    from tortoise import Tortoise, connections
    from tortoise.migrations.api import migrate

    from perezvon.core.db import tortoise_config
    from perezvon.core.models import (
        AccessGrant,
        Attempt,
        Call,
        Connection,
        Department,
        Lead,
        Office,
        OperatorNumber,
        Project,
        User,
    )
    from tests.test_enablement_migration import insert_as_of

    config = tortoise_config(database_url)
    await migrate(config=config, target=FIRST)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    client = connections.get("default")
    now = dt.datetime.now(dt.UTC)
    # each row holds only the columns the first schema has (insert_as_of), the values the models give
    project = await insert_as_of(client, database_url, Project(name="Since the first release"))
    connection = await insert_as_of(client, database_url, Connection(project_id=project, domain="old.example"))
    user = await insert_as_of(client, database_url, User(phone="+79160000001", email="old@example.com"))
    await insert_as_of(client, database_url, AccessGrant(user_id=user, connection_id=connection, level="view"))
    office = await insert_as_of(client, database_url, Office(connection_id=connection, name="Office"))
    await insert_as_of(client, database_url, Department(connection_id=connection, name="Sales"))
    await insert_as_of(
        client, database_url, OperatorNumber(connection_id=connection, office_id=office, phone="+74951234567")
    )
    lead_id, call_id = uuid.uuid4(), uuid.uuid4()
    await insert_as_of(
        client,
        database_url,
        Lead(id=lead_id, connection_id=connection, source="api", phone="+79165550000", created_at=now),
    )
    await insert_as_of(
        client,
        database_url,
        Call(id=call_id, lead_id=lead_id, connection_id=connection, created_at=now, state="finished"),
    )
    await insert_as_of(
        client,
        database_url,
        Attempt(id=uuid.uuid4(), call_id=call_id, number=1, direction="operator_first", started_at=now, ended_at=now),
    )
    await Tortoise.close_connections()
    await migrate(config=config)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    try:
        grant = await AccessGrant.get(user_id=user)
        counts = {
            model.__name__: await model.all().count()
            for model in (
                Project,
                Connection,
                User,
                AccessGrant,
                Office,
                Department,
                OperatorNumber,
                Lead,
                Call,
                Attempt,
            )
        }
        counts["grant_may_see_contacts"] = int(grant.may_see_contacts)
    finally:
        await Tortoise.close_connections()
    return counts


async def test_a_first_release_database_with_rows_upgrades_to_the_latest_schema(tmp_path):
    url = await fresh_database_url(tmp_path)
    try:
        run = subprocess.run([sys.executable, str(Path(__file__)), url], capture_output=True, text=True, timeout=180)
    finally:
        await drop_databases(only=url)
    assert run.returncode == 0, run.stderr[-3000:]
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    # every row is still there, and a grant made before masking keeps showing contacts (0009)
    assert counts == {
        "Project": 1,
        "Connection": 1,
        "User": 1,
        "AccessGrant": 1,
        "Office": 1,
        "Department": 1,
        "OperatorNumber": 1,
        "Lead": 1,
        "Call": 1,
        "Attempt": 1,
        "grant_may_see_contacts": 1,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the child imports tests.* helpers
    try:
        print(json.dumps(asyncio.run(upgrade_with_rows(sys.argv[1]))), flush=True)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # a failed migration can leave an aiosqlite thread that would keep the process alive
