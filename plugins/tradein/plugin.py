"""The trade-in form plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.tradein.app import LEAD_SOURCE, Tradein
from perezvon.plugins.tradein.demo import demo_step
from perezvon.plugins.tradein.photos import ROUTES
from perezvon.plugins.tradein.sweep import sweep_job


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(Tradein())


@hookimpl
def perezvon_routes(settings):
    return ROUTES


@hookimpl
def perezvon_demo_steps():
    return [demo_step]


@hookimpl
def perezvon_jobs(registry):
    # photos a visitor uploaded but no lead took go a day later (docs/tradein.md#photos)
    registry.add("sweep_photos", sweep_job, every_minutes=60)
