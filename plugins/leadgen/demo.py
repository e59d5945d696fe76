"""What the lead generator adds to ``perezvon demo``: one promotion on the demo site."""
from __future__ import annotations

from typing import Any

from perezvon.core.models import AppEnablement
from perezvon.plugins.leadgen.schemas import LeadgenSettings

DEMO_GENERATOR = {"id": "demo-discount", "name": "Скидка 10% на первый заказ",
                  "trigger": {"kind": "scroll", "scroll_percent": 40, "activation_delay_seconds": 2}}


async def demo_step(connection) -> dict[str, Any]:
    enablement = await AppEnablement.get_or_none(connection_id=connection.id, app_key="leadgen")
    if enablement is not None and not (enablement.settings or {}).get("generators"):
        enablement.settings = LeadgenSettings().load({"generators": [DEMO_GENERATOR]})
        await enablement.save(update_fields=["settings"])
    return {}
