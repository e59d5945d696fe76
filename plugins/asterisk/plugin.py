"""The Asterisk telephony backend: hook implementations only (docs/asterisk.md)."""

from perezvon.api import hookimpl
from perezvon.plugins.asterisk.backend import AsteriskTelephony
from perezvon.plugins.asterisk.schemas import AsteriskSettings


@hookimpl
def perezvon_settings_schema():
    return AsteriskSettings


@hookimpl
def perezvon_register_telephony(registry, settings, core_settings):
    registry.add_telephony(AsteriskTelephony(settings, core_settings, registry))
