"""``perezvon telegram-check``: "check connection" -- getMe with the configured token."""

from __future__ import annotations

from perezvon.api import CheckFailed, CommandContext
from perezvon.plugins.telegram.notifier import TelegramNotifier

HELP = "check the Telegram bot token (getMe) and print the bot's @username"


async def check_command(context: CommandContext) -> int:
    notifier = TelegramNotifier(context.plugin_settings, context.settings)
    if not notifier.api.configured:
        print("No bot token: set token in [plugins.telegram] of plugins.toml (docs/telegram.md).", flush=True)
        return 1
    try:
        username = await notifier.check()
    except CheckFailed as exc:
        print("; ".join(str(message) for messages in exc.errors.values() for message in messages), flush=True)
        return 1
    finally:
        await notifier.api.push.close()
    print(f"The bot answers: {username}", flush=True)
    return 0
