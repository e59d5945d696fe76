"""A user's own choices in the admin (docs/admin.md#the-calls-table): the Calls table's columns."""

from __future__ import annotations

from starlette.responses import Response

from perezvon.web.admin.framework import Ctx, safe_next
from perezvon.web.admin.table_columns import COLUMNS, MAX_NAME, MAX_NAMES, PREFERENCE, known_keys


async def save_calls_columns(ctx: Ctx) -> Response:
    """Save the columns ticked in the chooser (``columns``, repeated), or go back to the default set
    (``action=reset``); then back to the table (``back``, a local path)."""
    names = ctx.form.getlist("columns")
    preferences = dict(ctx.user.preferences or {})
    if ctx.form.get("action") == "reset":
        preferences.pop(PREFERENCE, None)
    else:
        if len(names) > MAX_NAMES or any(len(name) > MAX_NAME for name in names):
            return await ctx.error(400, "This is not a choice of columns.")
        keys = known_keys(names)
        if len(keys) <= sum(column.fixed for column in COLUMNS):
            return await ctx.error(400, "Choose at least one column besides the time.")
        preferences[PREFERENCE] = keys
    ctx.user.preferences = preferences
    await ctx.user.save(update_fields=["preferences"])
    back = safe_next(ctx.form.get("back"))
    return ctx.redirect(back if back.startswith("/calls") else "/calls")
