"""Sub-commands of ``perezvon`` that plugins add (the ``perezvon_commands`` hook).

A plugin declares a command with a name, a help line, a function that adds its
options to its argparse sub-parser, and a handler. The handler gets a
:class:`CommandContext`: the parsed arguments, the deployment's settings (from
the same common options and environment as the built-in commands), the
plugin's own validated settings, and the application, started on request and
stopped by the core when the handler returns.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import inspect
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from perezvon.core.registry import PluginError
from perezvon.core.settings import Settings

if TYPE_CHECKING:
    from perezvon.core.app import Perezvon

#: ``def handler(context) -> int | None`` or ``async def``; the result is the exit status (None is 0)
CommandHandler = Callable[["CommandContext"], int | Awaitable[int | None] | None]


def settle_heap() -> None:
    """After start-up: keep the long-lived objects (modules, plugins, models) out of
    the collector's sight, and collect young objects less often -- every lead
    allocates many short-lived ones, and frequent gen-0 passes cost request time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 50, 100)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``perezvon <name>`` sub-command and the plugin that added it."""

    name: str
    handler: CommandHandler
    help: str = ""
    #: adds the command's own options to its sub-parser (the common options are there already)
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    plugin: str = "?"


class CommandRegistry:
    """Handed to one plugin's ``perezvon_commands``: ``commands.add(...)`` declares a command."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.commands: list[Command] = []

    def add(
        self,
        name: str,
        handler: CommandHandler,
        *,
        help: str = "",
        arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        if not name or name.startswith("-") or any(c.isspace() for c in name):
            raise PluginError(f"plugin {self.plugin!r}: {name!r} is not a usable command name")
        if any(c.name == name for c in self.commands):
            raise PluginError(f"plugin {self.plugin!r} adds the command 'perezvon {name}' twice")
        self.commands.append(Command(name, handler, help, arguments, self.plugin))


def check_clashes(commands: list[Command], built_in: set[str]) -> dict[str, Command]:
    """The commands by name; a name taken by a built-in command or by two plugins stops start-up."""
    by_name: dict[str, Command] = {}
    for command in commands:
        if command.name in built_in:
            raise PluginError(
                f"plugin {command.plugin!r} adds the command 'perezvon {command.name}', but that is a built-in command"
            )
        if command.name in by_name:
            raise PluginError(
                f"plugins {by_name[command.name].plugin!r} and {command.plugin!r} both add "
                f"the command 'perezvon {command.name}'"
            )
        by_name[command.name] = command
    return by_name


class CommandContext:
    """What a plugin's command handler works with."""

    def __init__(self, args: argparse.Namespace, settings: Settings, plugin: str) -> None:
        self.args = args
        #: the deployment's settings (data dir, database, Redis, plugins file, public URL)
        self.settings = settings
        self.plugin = plugin
        self._app: Perezvon | None = None

    @property
    def app(self) -> Perezvon:
        """The application, built as for the built-in commands (plugins loaded and configured), not started."""
        if self._app is None:
            from perezvon.core.app import Perezvon

            self._app = Perezvon(self.settings)
        return self._app

    @property
    def plugin_settings(self) -> dict[str, Any]:
        """The command's plugin's validated settings (its plugins.toml section)."""
        return self.app.host.settings_of(self.plugin)

    async def start(self, *, migrate: bool = False) -> Perezvon:
        """Start the application (Redis, database, lead intake); the core stops it after the handler."""
        await self.app.start(migrate=migrate)
        return self.app

    def stop_event(self) -> asyncio.Event:
        """An event set on Ctrl-C or SIGTERM: a long-running command waits for it, then cleans up."""
        stop = asyncio.Event()
        stop_on_signals(stop)
        return stop

    @staticmethod
    def settle_heap() -> None:
        """Call once start-up is done in a long-running command (see :func:`settle_heap`)."""
        settle_heap()


async def run_command(command: Command, args: argparse.Namespace, settings: Settings) -> int:
    context = CommandContext(args, settings, command.plugin)
    try:
        result = command.handler(context)
        if inspect.isawaitable(result):
            result = await result
    finally:
        if context._app is not None:
            await context._app.stop()
    return 0 if result is None else int(result)
