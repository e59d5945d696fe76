"""The plugin's two periodic jobs (``reports.check_problems`` every minute, ``reports.send_digests``
every five), each bound to the plugin's settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from perezvon.plugins.reports.reports import check_problems, send_digests

Job = Callable[[dict[str, Any]], Awaitable[Any]]


def jobs(settings: Mapping[str, Any]) -> tuple[Job, Job]:
    async def check(ctx: dict[str, Any]) -> dict[str, int]:
        """Open, alert and close problem episodes (docs/notifications.md#problem-alerts)."""
        return await check_problems(ctx["perezvon"], settings)

    async def digests(ctx: dict[str, Any]) -> int:
        """Send the digests that are due (docs/notifications.md#digests)."""
        return await send_digests(ctx["perezvon"], settings)

    return check, digests
