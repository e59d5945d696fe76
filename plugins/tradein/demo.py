"""What the trade-in form adds to ``perezvon demo``: its tab on the demo site, opened also by the
page's ``#tradein`` link."""

from __future__ import annotations

from typing import Any


async def demo_step(connection) -> dict[str, Any]:
    # the demo switches every application on with its defaults (core/demo.py): a finished form
    return {}
