"""The Google Analytics plugin: hook implementations only."""
from perezvon.plugins.google_analytics.integration import GoogleAnalytics

from perezvon.api import hookimpl


@hookimpl
def perezvon_register_integrations(registry):
    registry.add_integration(GoogleAnalytics())
