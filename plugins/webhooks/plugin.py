"""The webhooks plugin: hook implementations only."""
from hookspecs import hookimpl
from plugins.webhooks.integration import Webhooks


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Webhooks())
