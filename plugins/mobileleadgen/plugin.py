"""The mobile lead-generator plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.mobileleadgen.app import LEAD_SOURCE, MobileLeadgen
from perezvon.plugins.mobileleadgen.demo import demo_step


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(MobileLeadgen())


@hookimpl
def perezvon_demo_steps():
    return [demo_step]
