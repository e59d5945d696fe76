"""Photos no lead took (docs/tradein.md#photos): a visitor uploads them at the photos step and may
then close the form, or have the lead refused. An hourly job deletes such a photo a day after its
upload; a photo a lead carries is kept as long as the lead's files are.

A form is sent within minutes of its photos, so a photo is an orphan when no trade-in lead of its
connection created from its upload to a day later names it. Each run looks only at files uploaded
between one day and :data:`LOOK_BACK` ago, so it reads a bounded slice of leads however old the
site is; the hourly runs cover every file in that window many times over.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from perezvon.api import Lead
from perezvon.plugins.tradein.photos import KEY, PHOTO_ID

log = logging.getLogger("perezvon.plugins.tradein")

#: a photo no lead named this long after its upload is an orphan
ORPHAN_AFTER = dt.timedelta(days=1)
#: files older than this were looked at by earlier runs
LOOK_BACK = dt.timedelta(days=8)


async def sweep_orphan_photos(data_dir: Path, now: dt.datetime | None = None) -> int:
    """Delete the orphan photos of every connection; how many were deleted."""
    now = now or dt.datetime.now(dt.UTC)
    root = Path(data_dir) / KEY
    if not root.is_dir():
        return 0
    deleted = 0
    for where in sorted(root.iterdir()):
        if where.is_dir() and where.name.isdigit():
            deleted += await _sweep_connection(where, int(where.name), now)
    return deleted


async def _sweep_connection(where: Path, connection_id: int, now: dt.datetime) -> int:
    candidates: dict[str, tuple[Path, dt.datetime]] = {}
    for path in where.iterdir():
        if not PHOTO_ID.match(path.name) or not path.is_file():
            continue
        uploaded = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if now - LOOK_BACK <= uploaded <= now - ORPHAN_AFTER:
            candidates[path.name] = (path, uploaded)
    if not candidates:
        return 0
    first = min(uploaded for _, uploaded in candidates.values())
    last = max(uploaded for _, uploaded in candidates.values())
    named: set[str] = set()
    extras = await Lead.filter(
        connection_id=connection_id, source=KEY, created_at__gte=first, created_at__lte=last + ORPHAN_AFTER
    ).values_list("extra", flat=True)
    for extra in extras:
        photos = extra.get("photos") if isinstance(extra, dict) else None
        if isinstance(photos, list):
            named.update(p for p in photos if isinstance(p, str))
    deleted = 0
    for name, (path, _) in candidates.items():
        if name not in named:
            path.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        log.info("connection %s: %d trade-in photos no lead took deleted", connection_id, deleted)
    return deleted


async def sweep_job(ctx: dict[str, Any]) -> str:
    deleted = await sweep_orphan_photos(ctx["perezvon"].settings.data_dir)
    return f"deleted {deleted}"
