"""What the mobile panel adds to ``perezvon demo``: a number to call and a messenger on the demo site
(the demo page has no office whose CSS selector would find one), once: settings someone edited stay."""

from __future__ import annotations

from typing import Any

from perezvon.api import PluginKind, plugin_settings, store_plugin_settings
from perezvon.plugins.mobilepanel.schemas import MobilePanelSettings

DEMO_SETTINGS = {"call": {"phone": "+7 495 123-45-67"}, "messengers": {"telegram": "@perezvon_demo"}}


async def demo_step(connection) -> dict[str, Any]:
    settings = await plugin_settings(connection, PluginKind.APPLICATION, "mobilepanel")
    if settings is not None and not settings.get("call", {}).get("phone"):
        await store_plugin_settings(
            connection, PluginKind.APPLICATION, "mobilepanel", MobilePanelSettings().load(DEMO_SETTINGS)
        )
    return {}
