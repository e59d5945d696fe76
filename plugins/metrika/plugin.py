"""The Yandex Metrika plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.metrika.integration import Metrika


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Metrika())
