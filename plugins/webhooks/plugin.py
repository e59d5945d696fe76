"""The webhooks plugin: hook implementations only."""
from perezvon.plugins.webhooks.integration import Webhooks

from perezvon.api import hookimpl


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Webhooks())
