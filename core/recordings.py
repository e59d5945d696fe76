"""The platform's recording storage: where call recordings live and how long.

A telephony backend hands over the file its PBX wrote (:func:`keep_recording`);
the file moves under ``<data dir>/recordings/YYYY/MM/DD/`` and the attempt (and
its call) remember the path. The admin plays and downloads it from there. After
the retention period (``PEREZVON_RECORDING_RETENTION_DAYS``, 92 days -- about
three months -- by default) :func:`expire_recordings` deletes the file and
clears the path, so nobody is offered a recording that no longer exists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from pathlib import Path

log = logging.getLogger("perezvon.recordings")

#: a PBX finishes writing after the hang-up; wait this long for the size to settle
SETTLE_SECONDS = 3.0


def recordings_root(data_dir: Path) -> Path:
    return Path(data_dir) / "recordings"


async def keep_recording(
    source: Path,
    data_dir: Path,
    call_id: str,
    attempt_number: int,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    now: dt.datetime | None = None,
) -> Path | None:
    """Move the PBX's file into the storage; ``None`` (and a log line) when it never appeared."""
    source = Path(source)
    deadline = asyncio.get_running_loop().time() + settle_seconds
    last_size = -1
    while True:
        size = source.stat().st_size if source.exists() else -1
        if size > 0 and size == last_size:
            break
        if asyncio.get_running_loop().time() >= deadline:
            if size <= 0:
                log.warning(
                    "call %s attempt %s: no recording at %s (is the recordings directory shared "
                    "with Asterisk? docs/asterisk.md)",
                    call_id,
                    attempt_number,
                    source,
                )
                return None
            break
        last_size = size
        await asyncio.sleep(0.1)
    day = (now or dt.datetime.now(dt.UTC)).strftime("%Y/%m/%d")
    target = recordings_root(data_dir) / day / f"{call_id}-{attempt_number}{source.suffix or '.wav'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(shutil.move, source, target)
    return target


async def expire_recordings(data_dir: Path, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete recordings of attempts that ended more than ``retention_days`` ago; returns how many."""
    from perezvon.core.models import Attempt, Call

    if retention_days <= 0:  # 0 keeps them forever
        return 0
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    old = (
        await Attempt.filter(ended_at__lt=cutoff)
        .exclude(recording="")
        .limit(5000)
        .values_list("id", "call_id", "recording")
    )
    root = recordings_root(data_dir).resolve()
    for attempt_id, call_id, path in old:
        file = Path(path)
        # only files inside our storage are ours to delete
        if file.resolve().is_relative_to(root):
            file.unlink(missing_ok=True)
        await Attempt.filter(id=attempt_id).update(recording="")
        await Call.filter(id=call_id, recording=path).update(recording="")
    if old:
        log.info("recordings: %d older than %d days deleted", len(old), retention_days)
    return len(old)
