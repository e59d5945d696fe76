"""The reports plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.reports.jobs import jobs
from perezvon.plugins.reports.preferences import routes
from perezvon.plugins.reports.schemas import ReportsSettings


@hookimpl
def perezvon_settings_schema():
    return ReportsSettings


@hookimpl
def perezvon_jobs(registry, settings):
    check, digests = jobs(settings)
    registry.add("check_problems", check, every_minutes=1)
    registry.add("send_digests", digests, every_minutes=5)


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.reports.models"]


@hookimpl
def perezvon_routes(settings):
    return routes(settings["default_digest"])
