"""The Yandex Metrika plugin: hook implementations only."""
from perezvon.plugins.metrika.integration import Metrika

from perezvon.api import hookimpl


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Metrika())
