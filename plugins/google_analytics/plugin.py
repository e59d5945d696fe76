"""The Google Analytics plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.google_analytics.integration import GoogleAnalytics


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(GoogleAnalytics())
