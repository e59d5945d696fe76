"""The site-forms plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.siteforms.addresses import demo_step
from perezvon.plugins.siteforms.app import LEAD_SOURCE, SiteForms
from perezvon.plugins.siteforms.command import HELP, run_smtp, smtp_arguments
from perezvon.plugins.siteforms.notify import notify_kept
from perezvon.plugins.siteforms.schemas import SiteFormsSettings
from perezvon.plugins.siteforms.server import SiteFormsSmtpServer


@hookimpl
def perezvon_settings_schema():
    return SiteFormsSettings


@hookimpl
def perezvon_register_lead_sources(registry):
    registry.add_lead_source(LEAD_SOURCE)


@hookimpl
def perezvon_register_applications(registry, settings, core_settings):
    registry.add_application(SiteForms(settings, core_settings))


@hookimpl
def perezvon_jobs(registry):
    registry.add("notify_kept", notify_kept)


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.siteforms.models"]


@hookimpl
def perezvon_servers(context, settings, core_settings):
    return [SiteFormsSmtpServer(context, settings, core_settings)]


@hookimpl
def perezvon_demo_steps(settings):
    return [demo_step(settings["domain"])]


@hookimpl
def perezvon_commands(commands):
    commands.add("smtp", run_smtp, help=HELP, arguments=smtp_arguments)
