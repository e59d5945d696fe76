"""The SMS plugin: hook implementations only (docs/sms.md)."""

from perezvon.api import hookimpl
from perezvon.plugins.sms.followup import SmsFollowUp
from perezvon.plugins.sms.notifier import SmsNotifier
from perezvon.plugins.sms.providers import NONE, DeploymentSettings
from perezvon.plugins.sms.routes import ROUTES


@hookimpl
def perezvon_settings_schema():
    return DeploymentSettings


@hookimpl
def perezvon_register_integrations(registry, settings, core_settings):
    # the applications' table is passed, not copied: plugins registered later fill it too
    registry.add_integration(SmsFollowUp(settings, core_settings.public_url, registry.applications))


@hookimpl
def perezvon_register_notifiers(registry, settings):
    if settings.get("alerts") and settings.get("provider", NONE) != NONE:
        registry.add_notifier(SmsNotifier(settings))


@hookimpl
def perezvon_routes(settings):
    return ROUTES


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.sms.models"]
