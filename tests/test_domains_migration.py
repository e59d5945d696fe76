"""Migration 0012 fills ``connection_domains`` from the connections as they stood at 0011.

Every form of every domain becomes a row of its connection (a Cyrillic domain also as its xn--
form); a domain two connections already shared before the unique index existed stays with the
older one, so the migration never fails on an old database. Runs on SQLite, or on PostgreSQL when
``PEREZVON_TEST_DATABASE_URL`` names a server; in a child process, as tests/test_enablement_migration.py
explains (tortoise keeps its state per process).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from perezvon.core.testing import drop_databases, fresh_database_url

BEFORE = "perezvon.0011_call_redials"

#: (primary, extra domains) of the connections written at 0011, oldest first
OLD = [
    ("first.example", ["shop.first.example", "пример.рф"]),
    ("second.example", ["shop.first.example", "m.second.example"]),  # shared with the first
    ("third.example", ["xn--e1afmkfd.xn--p1ai"]),  # the first's Cyrillic domain, as a browser spells it
]


async def migrate_and_read(database_url: str) -> list[list[str]]:
    from tortoise import Tortoise, connections
    from tortoise.migrations.api import migrate

    from perezvon.core.db import tortoise_config
    from perezvon.core.models import Connection, ConnectionDomain, Project
    from tests.test_enablement_migration import insert_as_of

    config = tortoise_config(database_url)
    await migrate(config=config, target=BEFORE)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    client = connections.get("default")
    # written as at 0011: only the columns that exist then (later migrations add more), and not through
    # Connection.save, which would claim the domains in the table 0012 makes
    project_id = await insert_as_of(client, database_url, Project(name="Before 0012"))
    for primary, extra in OLD:
        await insert_as_of(client, database_url, Connection(project_id=project_id, domain=primary, extra_domains=extra))
    await Tortoise.close_connections()
    await migrate(config=config)
    await Tortoise.close_connections()
    await Tortoise.init(config=config)
    try:
        rows = await ConnectionDomain.all().order_by("domain").values_list("connection__domain", "domain")
    finally:
        await Tortoise.close_connections()
    return [list(row) for row in rows]


async def test_migration_0012_claims_every_domain_once(tmp_path):
    url = await fresh_database_url(tmp_path)
    try:
        run = subprocess.run([sys.executable, str(Path(__file__)), url], capture_output=True, text=True, timeout=120)
    finally:
        await drop_databases(only=url)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(rows) == sorted(
        [
            ["first.example", "first.example"],
            ["first.example", "shop.first.example"],
            ["first.example", "пример.рф"],
            ["first.example", "xn--e1afmkfd.xn--p1ai"],
            ["second.example", "second.example"],
            ["second.example", "m.second.example"],
            ["third.example", "third.example"],
        ]
    )
    # the newer connections' shared domains are named in the log for someone to look at
    assert "shop.first.example of connection" in run.stderr and "xn--e1afmkfd.xn--p1ai of connection" in run.stderr


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the child imports tests.* helpers
    print(json.dumps(asyncio.run(migrate_and_read(sys.argv[1])), ensure_ascii=False))
