"""Hooks any plugin may implement, whatever its family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from marshmallow import Schema
    from starlette.routing import BaseRoute

    from perezvon.core.commands import CommandRegistry
    from perezvon.core.registry import DemoStep, JobRegistry
    from perezvon.core.settings import Settings


@hookspec(firstresult=True)
def perezvon_settings_schema() -> type[Schema] | None:
    """The marshmallow schema of this plugin's deployment settings.

    When: once at start-up, for each enabled plugin, before any other hook.
    Arguments: none.
    Returns: a ``marshmallow.Schema`` subclass. The plugin's section of
    ``plugins.toml`` (less the ``enabled`` key) is loaded through it; the
    loaded dict is passed as ``settings`` to every other hook of the plugin.
    A validation error stops start-up with one message naming the plugin and
    the field. Fields with ``metadata={"secret": True}`` are masked wherever
    settings are shown. Return ``None`` (or don't implement) for no settings.
    firstresult: yes -- it is called for one plugin at a time.
    """


@hookspec
def perezvon_routes(settings: dict[str, Any]) -> list[BaseRoute] | None:
    """Starlette routes this plugin serves.

    When: once while the web app is built.
    Arguments: ``settings`` -- this plugin's validated deployment settings.
    Returns: a list of Starlette routes. They are mounted under
    ``/p/<plugin name>/`` so two plugins can never collide, and the core
    refuses a plugin whose routes cannot be mounted with a clear error.
    """


@hookspec
def perezvon_jobs(registry: JobRegistry, settings: dict[str, Any]) -> None:
    """Background jobs (arq functions) this plugin runs in the worker.

    When: once while the worker is built (and while the web app is built, so
    the web process may enqueue them).
    Arguments: ``registry`` -- call ``registry.add(name, coroutine_function)``
    with ``async def job(ctx, ...)``; the job is registered as
    ``"<plugin name>.<name>"``; ``every_minutes=N`` (N divides 60) also runs it
    every N minutes in the deliveries worker. ``settings`` -- this plugin's settings.
    Returns: nothing.
    """


@hookspec
def perezvon_models() -> list[str] | None:
    """Tortoise model modules this plugin owns.

    When: once, when the database is initialised.
    Arguments: none.
    Returns: a list of importable module paths (e.g.
    ``["my_plugin.models"]``). They form one Tortoise app labelled with the
    plugin's name; its migrations live in the sibling ``migrations`` package
    of the first module and run with ``perezvon migrate``.
    """


@hookspec
def perezvon_demo_steps(settings: dict[str, Any], core_settings: Settings) -> list[DemoStep] | None:
    """What this plugin adds to ``perezvon demo``.

    When: each time ``perezvon demo`` seeds the demo (it must stay idempotent).
    Arguments: ``settings`` -- this plugin's settings; ``core_settings`` --
    the deployment's :class:`perezvon.api.Settings`.
    Returns: a list of ``async def step(connection) -> dict`` functions (see
    :data:`perezvon.api.DemoStep`). The core awaits each with the demo
    connection after its own seeding; the keys of the returned dicts are added
    to the demo's output (``perezvon demo --json``), e.g. the connection's
    technical e-mail address.
    """


@hookspec
def perezvon_commands(commands: CommandRegistry) -> None:
    """Sub-commands this plugin adds to the ``perezvon`` command line.

    When: each time ``perezvon`` runs, before it parses its arguments, for each
    enabled plugin (a disabled plugin's commands are not offered). It runs
    before the settings are read, so ``perezvon --help`` works with any
    configuration: declare commands here, read settings in the handler.
    Arguments: ``commands`` -- call ``commands.add(name, handler, help=...,
    arguments=...)`` (see :class:`perezvon.api.CommandRegistry`).
    ``arguments(parser)`` adds the command's own options to its argparse
    sub-parser, which already has the common options (``--data-dir``,
    ``--database-url``, ``--redis-url``, ``--plugins``, ``--public-url``).
    ``handler(context)`` -- plain or ``async def`` -- gets a
    :class:`perezvon.api.CommandContext` (``args``, ``settings``,
    ``plugin_settings``, ``app``, ``await start()``, ``stop_event()``) and
    returns the exit status (``None`` is 0); the core stops the application
    after it.
    Returns: nothing. A name that is a built-in command or another plugin's
    command stops start-up with a message naming both.
    """
