"""The webhooks plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.webhooks.integration import Webhooks


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Webhooks())
