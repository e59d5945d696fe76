"""What the widget adds to ``perezvon demo``: a page of a sample site carrying the snippet,
and the HASH link that page uses (``<a href="#callme">``)."""
from __future__ import annotations

from typing import Any

from perezvon.core.models import AppEnablement

DEMO_HASH = {"name": "callme", "look": {"title": "Перезвоним за [TIMER_TIME] секунд — оставьте номер"}}


def demo_step(public_url: str):
    async def step(connection) -> dict[str, Any]:
        enablement = await AppEnablement.get_or_none(connection_id=connection.id, app_key="widget")
        if enablement is not None and not (enablement.settings or {}).get("hashes"):
            enablement.settings = {**(enablement.settings or {}), "hashes": [DEMO_HASH]}
            await enablement.save(update_fields=["settings"])
        return {"demo_site_url": f"{public_url.rstrip('/')}/site/try?token={connection.token}"}

    return step
