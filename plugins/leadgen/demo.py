"""What the lead generator adds to ``perezvon demo``: one promotion on the demo site."""

from __future__ import annotations

from typing import Any

from perezvon.api import PluginKind, plugin_settings, store_plugin_settings
from perezvon.plugins.leadgen.schemas import LeadgenSettings

DEMO_GENERATOR = {
    "id": "demo-discount",
    "name": "Скидка 10% на первый заказ",
    "trigger": {"kind": "scroll", "scroll_percent": 40, "activation_delay_seconds": 2},
}


async def demo_step(connection) -> dict[str, Any]:
    settings = await plugin_settings(connection, PluginKind.APPLICATION, "leadgen")
    if settings is not None and not settings.get("generators"):
        await store_plugin_settings(
            connection, PluginKind.APPLICATION, "leadgen", LeadgenSettings().load({"generators": [DEMO_GENERATOR]})
        )
    return {}
