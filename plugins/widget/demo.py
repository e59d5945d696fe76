"""What the widget adds to ``perezvon demo``: a page of a sample site carrying the snippet,
and the HASH link that page uses (``<a href="#callme">``)."""

from __future__ import annotations

from typing import Any

from perezvon.api import PluginKind, plugin_settings, store_plugin_settings

DEMO_HASH = {"name": "callme", "look": {"title": "Перезвоним за [TIMER_TIME] секунд — оставьте номер"}}


def demo_step(public_url: str):
    async def step(connection) -> dict[str, Any]:
        settings = await plugin_settings(connection, PluginKind.APPLICATION, "widget")
        if settings is not None and not settings.get("hashes"):
            await store_plugin_settings(
                connection, PluginKind.APPLICATION, "widget", {**settings, "hashes": [DEMO_HASH]}
            )
        return {"demo_site_url": f"{public_url.rstrip('/')}/site/try?token={connection.token}"}

    return step
