"""The amoCRM plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.amocrm.integration import Amocrm


@hookimpl
def perezvon_register_integrations(registry, core_settings):
    # tokens are sealed with a key derived from the deployment's secret key
    registry.add_integration(Amocrm(secret_key=core_settings.secret_key, public_url=core_settings.public_url))


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.amocrm.models"]
