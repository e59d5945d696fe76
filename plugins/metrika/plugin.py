"""The Yandex Metrika plugin: hook implementations only."""
from hookspecs import hookimpl
from plugins.metrika.integration import Metrika


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Metrika())
