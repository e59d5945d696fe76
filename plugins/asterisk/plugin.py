"""The Asterisk telephony backend: hook implementations only (docs/asterisk.md)."""
from hookspecs import hookimpl
from plugins.asterisk.backend import AsteriskTelephony
from plugins.asterisk.schemas import AsteriskSettings


@hookimpl
def perezvon_settings_schema():
    return AsteriskSettings


@hookimpl
def perezvon_register_telephony(registry, settings, core_settings):
    registry.add_telephony(AsteriskTelephony(settings, core_settings, registry))
