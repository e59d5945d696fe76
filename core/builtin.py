"""The core's own contributions, registered through the same hooks as any plugin.

It cannot be switched off: the ``api`` lead source (leads posted by any
client) and the jobs that drive callbacks live here.
"""

from __future__ import annotations

from perezvon.core import jobs
from perezvon.core.registry import JobRegistry, LeadSource, Registry
from perezvon.hookspecs import hookimpl

NAME = "core"


@hookimpl
def perezvon_register_lead_sources(registry: Registry) -> None:
    registry.add_lead_source(LeadSource(key="api", title="API", calltouch_code=16))


@hookimpl
def perezvon_jobs(registry: JobRegistry) -> None:
    registry.add("place_attempt", jobs.place_attempt)
    registry.add("deliver", jobs.deliver)
    registry.add("notify", jobs.notify)
    registry.add("sweep", jobs.sweep)
    # retention and quotas (docs/recordings.md): once across the workers every ten minutes
    registry.add("recordings", jobs.recordings, every_minutes=10)
