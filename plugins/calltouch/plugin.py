"""The Calltouch plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.calltouch.integration import Calltouch


@hookimpl
def perezvon_register_integrations(registry):
    # the lead sources' table is passed, not copied: plugins registered later fill it too
    registry.add_integration(Calltouch(lead_sources=registry.lead_sources))
