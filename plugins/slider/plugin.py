"""The slider plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.slider.app import LEAD_SOURCE, Slider
from perezvon.plugins.slider.demo import demo_step


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(Slider())


@hookimpl
def perezvon_demo_steps():
    return [demo_step]
