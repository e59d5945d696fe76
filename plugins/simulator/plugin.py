"""The simulator telephony backend: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.simulator.backend import SimulatedTelephony
from perezvon.plugins.simulator.schemas import SimulatorSettings


@hookimpl
def perezvon_settings_schema():
    return SimulatorSettings


@hookimpl
def perezvon_register_telephony(registry, settings, core_settings):
    registry.add_telephony(SimulatedTelephony(settings, core_settings))
