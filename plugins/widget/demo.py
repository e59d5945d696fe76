"""What the widget adds to ``perezvon demo``: a page of a sample site carrying the snippet."""
from __future__ import annotations

from typing import Any


def demo_step(public_url: str):
    async def step(connection) -> dict[str, Any]:
        return {"demo_site_url": f"{public_url.rstrip('/')}/site/try?token={connection.token}"}

    return step
