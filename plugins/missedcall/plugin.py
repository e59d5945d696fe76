"""The missed-call source: hook implementations only (docs/calls.md#missed-calls-become-leads)."""

from perezvon.api import hookimpl
from perezvon.plugins.missedcall.app import LEAD_SOURCE, MissedCallApp, MissedCalls


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)
    registry.add_missed_call_source(MissedCalls())


@hookimpl
def perezvon_register_applications(registry):
    registry.add_application(MissedCallApp())
