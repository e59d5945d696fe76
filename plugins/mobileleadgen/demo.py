"""What the mobile lead generator adds to ``perezvon demo``: one promotion on the demo site, for phones."""

from __future__ import annotations

from typing import Any

from perezvon.api import PluginKind, plugin_settings, store_plugin_settings
from perezvon.plugins.mobileleadgen.schemas import MobileLeadgenSettings

DEMO_GENERATOR = {
    "id": "demo-mobile",
    "name": "Скидка 10% с телефона",
    "trigger": {"kind": "time", "time_seconds": 6},
    "working": {"cover": {"text1": "Скидка 10% с телефона"}},
}


async def demo_step(connection) -> dict[str, Any]:
    settings = await plugin_settings(connection, PluginKind.APPLICATION, "mobileleadgen")
    if settings is not None and not settings.get("generators"):
        await store_plugin_settings(
            connection,
            PluginKind.APPLICATION,
            "mobileleadgen",
            MobileLeadgenSettings().load({"generators": [DEMO_GENERATOR]}),
        )
    return {}
