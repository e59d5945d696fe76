"""The widget plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.widget.app import LEAD_SOURCE, Widget
from perezvon.plugins.widget.demo import demo_step


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(Widget())


@hookimpl
def perezvon_demo_steps(core_settings):
    return [demo_step(core_settings.public_url)]
