"""The mobile panel plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.mobilepanel.app import LEAD_SOURCE, MobilePanel
from perezvon.plugins.mobilepanel.demo import demo_step


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(MobilePanel())


@hookimpl
def perezvon_demo_steps(core_settings):
    return [demo_step]
