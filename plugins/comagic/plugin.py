"""The CoMagic plugin: hook implementations only."""
from hookspecs import hookimpl
from plugins.comagic.integration import Comagic


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Comagic())
