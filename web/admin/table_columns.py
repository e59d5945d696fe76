"""The Calls table's columns: every one the table can show, the default set, and each user's choice.

The default set fits a 1280-1440 px laptop; the rest can be added from the column
chooser. A user's choice is kept server-side in ``User.preferences["calls_columns"]``,
so it follows them to any browser. Names no longer known (a column dropped in a
later version, or a hand-made request) are ignored, never an error when read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

PREFERENCE = "calls_columns"
#: more names than any real choice has: beyond it a request is not a choice but bad input
MAX_NAMES = 64
MAX_NAME = 64


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    #: the header, an English message id (Russian from the catalog)
    label: str
    default: bool = False
    #: a column the table cannot do without: it carries the link to the call
    fixed: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", default=True, fixed=True),
    Column("site", "Site", default=True),
    Column("connection", "Connection"),
    Column("office", "Office"),
    Column("department", "Department"),
    Column("call_type", "Call type"),
    Column("app", "App", default=True),
    Column("client", "Client", default=True),
    Column("operator", "Operator number"),
    Column("direction", "Direction"),
    Column("duration", "Duration", default=True),
    Column("status", "Status", default=True),
    Column("auto_tags", "Auto-tags", default=True),
    Column("user_tags", "User tags", default=True),
    Column("source", "Source", default=True),
    Column("channel", "Transfer type"),
    Column("page", "Page"),
)
BY_KEY = {column.key: column for column in COLUMNS}
DEFAULT_KEYS = tuple(column.key for column in COLUMNS if column.default)


def known_keys(names: Iterable[Any]) -> list[str]:
    """The known column names among ``names``, in the table's order, the fixed ones always included."""
    wanted = {name for name in names if isinstance(name, str)}
    return [column.key for column in COLUMNS if column.fixed or column.key in wanted]


def chosen_keys(preferences: dict[str, Any] | None) -> list[str]:
    """The columns a user sees: their saved choice (unknown names dropped), else the default set."""
    saved = (preferences or {}).get(PREFERENCE)
    if not isinstance(saved, list):
        return list(DEFAULT_KEYS)
    keys = known_keys(saved)
    return keys if len(keys) > sum(column.fixed for column in COLUMNS) else list(DEFAULT_KEYS)
