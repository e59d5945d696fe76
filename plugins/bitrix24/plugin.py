"""The Bitrix24 plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.bitrix24.integration import Bitrix24


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(Bitrix24())


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.bitrix24.models"]
