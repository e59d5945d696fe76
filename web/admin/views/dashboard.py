"""The dashboard (docs/admin.md#pages): calls by channel and source, weekday x hour, handled vs lost, per day."""

from __future__ import annotations

import collections
import datetime as dt
from zoneinfo import ZoneInfo

from starlette.responses import Response

from perezvon.core.call_filters import STATUSES, filtered_calls
from perezvon.core.models import DisplayStatus
from perezvon.web.admin.charts import bars, columns, heatmap
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.labels import CHANNEL, STATUS, WEEKDAYS
from perezvon.web.admin.views.calls import filter_choices, parsed_filters, visible_connections

DEFAULT_DAYS = 30
MAX_ROWS = 500_000


async def dashboard(ctx: Ctx) -> Response:
    filters, errors = parsed_filters(ctx)
    zone = ZoneInfo(filters["tz"])
    if not filters.get("date_from") and not filters.get("date_to"):
        today = dt.datetime.now(zone).date()
        filters.update(date_from=today - dt.timedelta(days=DEFAULT_DAYS - 1), date_to=today)
    rows = (
        await filtered_calls(filters, ctx.access.visible_connection_ids())
        .limit(MAX_ROWS)
        .values_list("created_at", "display_status", "lead__channel", "lead__source")
    )
    _ = ctx._
    by_channel = collections.Counter(r[2] for r in rows)
    by_source = collections.Counter(r[3] for r in rows)
    by_status = collections.Counter(r[1] for r in rows)
    grid = [[0] * 24 for _day in range(7)]
    per_day = collections.Counter()
    for created, *_rest in rows:
        local = created.astimezone(zone)
        grid[local.weekday()][local.hour] += 1
        per_day[local.date()] += 1
    days = []
    if filters.get("date_from") and filters.get("date_to"):
        day = filters["date_from"]
        while day <= filters["date_to"] and len(days) < 400:
            days.append(day)
            day += dt.timedelta(days=1)
    choices = await filter_choices(ctx, await visible_connections(ctx))
    titles = choices["apps"]
    handled = by_status.get(DisplayStatus.SUCCESSFUL, 0)
    # "lost" is the Lost status of docs/calls.md#display-statuses and nothing else: the same calls the
    # Calls table lists under that status. Cancelled (a party said no) and notified (e-mailed by the
    # 59 s rule) calls were not lost; unsuccessful and failed ones show in the by-status chart.
    lost = by_status.get(DisplayStatus.LOST, 0)
    return await ctx.render(
        "admin/dashboard.html",
        filters=filters,
        errors=errors,
        choices=choices,
        total=len(rows),
        handled=handled,
        lost=lost,
        pending=by_status.get("pending", 0),
        channel_chart=bars([(_(CHANNEL.get(k, k)), v) for k, v in by_channel.most_common()]),
        source_chart=bars([(titles.get(k, k), v) for k, v in by_source.most_common()]),
        status_chart=bars([(_(STATUS[k]), by_status.get(k, 0)) for k in STATUSES if by_status.get(k)]),
        heat_chart=heatmap(grid, [_(d) for d in WEEKDAYS]),
        day_chart=columns([(d.strftime("%d.%m"), per_day.get(d, 0)) for d in days]),
    )
