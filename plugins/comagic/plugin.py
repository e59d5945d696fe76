"""The CoMagic plugin: hook implementations only."""
from perezvon.plugins.comagic.integration import Comagic

from perezvon.api import hookimpl


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Comagic())
