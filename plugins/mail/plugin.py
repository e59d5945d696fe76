"""The mail plugin: hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.mail.demo import demo_step
from perezvon.plugins.mail.notifier import MailNotifier
from perezvon.plugins.mail.schemas import MailSettings


@hookimpl
def perezvon_settings_schema():
    return MailSettings


@hookimpl
def perezvon_register_notifiers(registry, settings, core_settings):
    # the lead sources' table is passed, not copied: plugins registered later fill it too
    registry.add_notifier(MailNotifier.from_settings(settings, core_settings, lead_sources=registry.lead_sources))


@hookimpl
def perezvon_demo_steps(settings, core_settings):
    return [demo_step(settings, core_settings)]
