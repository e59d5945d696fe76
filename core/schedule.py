"""When to call: working hours in the connection's time zone (docs/calls.md#scheduling).

A schedule maps ISO weekdays ("1" = Monday ... "7" = Sunday) to
``["HH:MM", "HH:MM"]`` or ``None`` for a day off; "24:00" closes at midnight.
Calendar overrides replace a date's hours (``short``/``workday``) or close it
(``holiday``). All functions are pure: they take a :class:`Hours` snapshot and
aware datetimes, and return aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.UTC
#: how far ahead to look for an opening before declaring the schedule empty
_HORIZON_DAYS = 400


class ScheduleError(ValueError):
    """The schedule cannot be used (e.g. it has no working day at all)."""


def _parse_hhmm(text: str) -> dt.timedelta:
    hours, minutes = text.split(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ScheduleError(f"not a time of day: {text!r}")
    return dt.timedelta(hours=h, minutes=m)


@dataclasses.dataclass(frozen=True)
class Hours:
    timezone: str
    weekly: dict[str, list[str] | None]
    #: date -> (opens, closes) or None for a holiday
    overrides: dict[dt.date, tuple[str, str] | None] = dataclasses.field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The day's opening and closing as aware UTC datetimes, or None when closed."""
        span: tuple[str, str] | list[str] | None
        if day in self.overrides:
            span = self.overrides[day]
        else:
            span = self.weekly.get(str(day.isoweekday()))
        if not span:
            return None
        opens, closes = (_parse_hhmm(t) for t in span)
        if closes <= opens:
            return None
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=self.zone)
        # wall-clock arithmetic, then to UTC: a DST change shifts real hours, not the sign on the door
        start = (midnight.replace(tzinfo=None) + opens).replace(tzinfo=self.zone)
        end = (midnight.replace(tzinfo=None) + closes).replace(tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def is_open(self, when: dt.datetime) -> bool:
        # every lead asks this: remember the last open window found (the object is frozen)
        last = self.__dict__.get("_last_window")
        if last and last[0] <= when < last[1]:
            return True
        local_day = when.astimezone(self.zone).date()
        for day in (local_day - dt.timedelta(days=1), local_day):
            span = self.window(day)
            if span and span[0] <= when < span[1]:
                object.__setattr__(self, "_last_window", span)
                return True
        return False

    def next_opening(self, after: dt.datetime) -> dt.datetime:
        """``after`` itself when open, else the next moment the line opens."""
        if self.is_open(after):
            return after.astimezone(UTC)
        day = after.astimezone(self.zone).date()
        for offset in range(_HORIZON_DAYS):
            span = self.window(day + dt.timedelta(days=offset))
            if span and span[0] > after:
                return span[0]
        raise ScheduleError("the schedule has no working hours: set at least one working day")


def first_attempt_at(
    hours: Hours, now: dt.datetime, *, delay_seconds: int = 0, preferred_at: dt.datetime | None = None
) -> dt.datetime:
    """When to place a new lead's first attempt.

    Inside working hours: after the webhook delay. A preferred time in the
    future, or a lead left outside working hours, waits for the next opening
    at or after that time. (The intake spreads leads that wait for the same
    opening on top of this: docs/calls.md#scheduling.)
    """
    candidate = now + dt.timedelta(seconds=delay_seconds)
    if preferred_at is not None and preferred_at > candidate:
        candidate = preferred_at
    return hours.next_opening(candidate)


def redial_at(hours: Hours, due: dt.datetime) -> dt.datetime:
    """A redial that falls outside working hours waits for the next opening."""
    return hours.next_opening(due)
