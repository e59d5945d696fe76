"""The CoMagic plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.comagic.integration import Comagic


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Comagic())
