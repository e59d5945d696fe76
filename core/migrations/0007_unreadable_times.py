"""Preferred times no driver can read back are cleared (docs/calls.md#what-the-stores-can-hold).

Before the intake checked the window of ``preferred_at``, a lead could carry
year 1 or 9999 with an offset: stored as it came, but converting it to UTC on
reading overflows, so every read of that lead failed (its call was never
dialled, the read API and the export failed for every page holding it). The
time was never honoured anyway (it lies decades away), so it is cleared; the
plain comparison works on both databases (SQLite keeps ISO text, whose
four-digit years sort as numbers).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

CLEAR_UNREADABLE = [
    "UPDATE leads SET preferred_at = NULL WHERE preferred_at < '1900-01-01' OR preferred_at >= '2200-01-01'",
]


class Migration(migrations.Migration):
    dependencies = [("perezvon", "0006_pending_jobs")]

    initial = False

    operations = [ops.RunSQL(CLEAR_UNREADABLE)]
