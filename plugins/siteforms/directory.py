"""Who a technical address belongs to, and what matching needs to know about that site.

Both are read on every message (the address at RCPT time, the site after
DATA), so they are cached for the deployment's connection-cache time, as the
intake caches its own view of a connection.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, cast

from perezvon.api import Connection, Department, Office, OperatorNumber, PluginKind, plugin_is_on
from perezvon.plugins.siteforms.app import KEY
from perezvon.plugins.siteforms.matching import SiteProfile
from perezvon.plugins.siteforms.models import TechnicalAddress

_MAX_CACHED = 10_000


@dataclasses.dataclass(frozen=True)
class KnownAddress:
    id: int
    local_part: str
    connection_id: int
    #: the connection is on and site forms are switched on for it
    accepting: bool


class _TtlCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._items.get(key)
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def put(self, key: Any, value: Any) -> None:
        if self.ttl <= 0:
            return
        if len(self._items) >= _MAX_CACHED:  # a stream of unknown addresses must not grow it forever
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)


class Directory:
    def __init__(self, ttl_seconds: float) -> None:
        self._addresses = _TtlCache(ttl_seconds)
        self._sites = _TtlCache(ttl_seconds)

    async def address(self, local_part: str) -> KnownAddress | None:
        """The address with this local part (lower-case), or None when there is none."""
        found, cached = self._addresses.get(local_part)
        if found:
            return cached
        rows = await TechnicalAddress.filter(local_part=local_part).values("id", "connection_id", "connection__is_on")
        known = None
        if rows:
            row = rows[0]
            app_on = await plugin_is_on(row["connection_id"], PluginKind.APPLICATION, KEY)
            known = KnownAddress(
                row["id"], local_part, row["connection_id"], accepting=bool(row["connection__is_on"]) and app_on
            )
        self._addresses.put(local_part, known)
        return known

    async def site(self, connection_id: int) -> SiteProfile:
        found, cached = self._sites.get(connection_id)
        if found:
            return cached
        connection = await Connection.get(id=connection_id)
        offices = (
            await Office.filter(connection_id=connection_id, is_active=True)
            .exclude(alt_name="")
            .values_list("id", "alt_name")
        )
        departments = await Department.filter(connection_id=connection_id, is_active=True).values_list("id", "name")
        # tortoise types a flat values_list as a list of tuples
        own_phones = cast(
            list[str], await OperatorNumber.filter(connection_id=connection_id).values_list("phone", flat=True)
        )
        site = SiteProfile(
            connection_id=connection_id,
            token=connection.token,
            domains=tuple(d.lower() for d in connection.domains()),
            offices=tuple((i, n) for i, n in offices if n.strip()),
            departments=tuple((i, n) for i, n in departments if n.strip()),
            own_phones=frozenset(own_phones),
            name=connection.name or "",
        )
        self._sites.put(connection_id, site)
        return site
