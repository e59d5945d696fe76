"""Database set-up: the Tortoise config, connecting, and schema migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as run_migrations

log = logging.getLogger("perezvon.db")

CORE_APP = "perezvon"


def tortoise_config(database_url: str, plugin_models: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The Tortoise config: the core app plus one app per plugin that owns models."""
    connection = expand_db_url(database_url)
    if connection["engine"] == "tortoise.backends.asyncpg":
        connection["engine"] = "perezvon.core.pg"  # Tortoise's asyncpg client, safe when a transaction cannot begin
    if connection["engine"] == "tortoise.backends.sqlite":
        connection["engine"] = "perezvon.core.sqlite"  # Tortoise's client, the dial path first in line
    if connection["engine"].endswith("sqlite"):
        Path(connection["credentials"]["file_path"]).parent.mkdir(parents=True, exist_ok=True)
        # web and worker processes share the file: wait for the writer lock instead of
        # failing, and fsync every commit (the intake commits in groups, so this is cheap)
        connection["credentials"].setdefault("busy_timeout", 10000)
        connection["credentials"].setdefault("synchronous", "FULL")
    apps: dict[str, Any] = {
        CORE_APP: {
            "models": ["perezvon.core.models"],
            "migrations": "perezvon.core.migrations",
            "default_connection": "default",
        },
    }
    for plugin, modules in (plugin_models or {}).items():
        apps[plugin] = {
            "models": modules,
            "migrations": modules[0].rsplit(".", 1)[0] + ".migrations",
            "default_connection": "default",
        }
    return {"connections": {"default": connection}, "apps": apps, "use_tz": True, "timezone": "UTC"}


async def connect(config: dict[str, Any]) -> None:
    # Tortoise keeps its state in a context variable; uvicorn runs the lifespan in a
    # task of its own, so request handlers would not see it without the global fallback.
    await Tortoise.init(config=config, _enable_global_fallback=True)
    # open the connection now: Tortoise opens it lazily under a lock, and a query cancelled
    # during that first open (a shutdown, a client gone) leaves the lock held for good
    await connections.get("default").execute_query("SELECT 1")


async def migrate(config: dict[str, Any]) -> None:
    """Create or upgrade the schema of every app to its latest migration."""
    await run_migrations(config=config)
    # the migration opened its own connections: close them, or their aiosqlite threads
    # (not daemon threads) would keep the process alive after everything else stopped
    await Tortoise.close_connections()


async def close() -> None:
    await Tortoise.close_connections()
