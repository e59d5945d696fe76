"""The Telegram plugin: hook implementations only (docs/telegram.md)."""

from perezvon.api import hookimpl
from perezvon.plugins.telegram.command import HELP, check_command
from perezvon.plugins.telegram.notifier import TelegramNotifier
from perezvon.plugins.telegram.poller import TelegramPoller
from perezvon.plugins.telegram.schemas import TelegramSettings


@hookimpl
def perezvon_settings_schema():
    return TelegramSettings


@hookimpl
def perezvon_register_notifiers(registry, settings, core_settings):
    registry.add_notifier(TelegramNotifier(settings, core_settings))


@hookimpl
def perezvon_models():
    return ["perezvon.plugins.telegram.models"]


@hookimpl
def perezvon_servers(settings, core_settings):
    return [TelegramPoller(TelegramNotifier(settings, core_settings))]


@hookimpl
def perezvon_commands(commands):
    commands.add("telegram-check", check_command, help=HELP)
