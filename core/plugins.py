"""The plugin host: discovers, configures and registers plugins.

Every plugin -- built-in or third-party -- arrives through the entry-point
group ``perezvon`` and is switched on in ``plugins.toml``::

    [perezvon]
    telephony = "simulator"        # which backend is active, when several are

    [plugins.simulator]
    enabled = true
    answer_after = 0.2             # the plugin's own settings, checked by its schema

The core imports no plugin by name. A plugin that fails to import or whose
settings do not validate stops start-up with one message naming the plugin
and the field (:class:`perezvon.core.registry.PluginError`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import os
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from marshmallow import Schema, ValidationError

from perezvon import core, hookspecs
from perezvon.core.commands import Command, CommandRegistry
from perezvon.core.registry import JobRegistry, PluginError, Registry, Server, ServerContext, TelephonyBackend
from perezvon.core.settings import Settings

log = logging.getLogger("perezvon.plugins")

ENTRY_POINT_GROUP = hookspecs.PROJECT
#: set to 1 to load only the plugins shipped with Perezvon (third-party entry points are ignored)
AUTOLOAD_OFF_ENV = "PEREZVON_DISABLE_PLUGIN_AUTOLOAD"
TRACE_ENV = "PEREZVON_TRACE_PLUGINS"

#: hooks named so are called once per enabled plugin at start-up with (registry, settings, core_settings)
REGISTRATION_PREFIX = f"{hookspecs.PROJECT}_register_"


def registration_hooks(pm: pluggy.PluginManager) -> tuple[str, ...]:
    """Every registration hook the manager has a spec for, in the order the spec modules declare them:
    a new ``perezvon_register_*`` spec is called without being listed anywhere else."""
    return tuple(
        name
        for name, caller in vars(pm.hook).items()
        if name.startswith(REGISTRATION_PREFIX) and getattr(caller, "spec", None) is not None
    )


@dataclasses.dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    origin: str  # "built-in" | "entry point" | "registered"
    enabled: bool
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    kinds: list[str] = dataclasses.field(default_factory=list)
    hooks: list[str] = dataclasses.field(default_factory=list)


def read_plugins_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise PluginError(
            f"plugins file {path} not found: run from the Perezvon checkout or set PEREZVON_PLUGINS"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"plugins file {path} is not valid TOML: {exc}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _flatten_errors(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error dict as ("field.sub", "message") pairs."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out += _flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix or "_schema", "; ".join(messages))]
    return [(prefix or "_schema", str(messages))]


class PluginHost:
    """Owns the pluggy manager and what the plugins registered.

    Everything outside this module calls plugins through its typed methods,
    never through ``pm.hook`` with loose keyword arguments.
    """

    def __init__(self, config: dict[str, Any] | None = None, core_settings: Settings | None = None) -> None:
        self.config = config or {}
        self.core_settings = core_settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        for module in hookspecs.SPEC_MODULES:
            self.pm.add_hookspecs(module)
        self.infos: dict[str, PluginInfo] = {}
        self.registry = Registry()
        self._folders: dict[str, dict[str, tuple[str, Path]]] = {}
        # the core's own hooks: always on, listed like any plugin
        from perezvon.core import builtin

        self.pm.register(builtin, name=builtin.NAME)
        self.infos[builtin.NAME] = PluginInfo(builtin.NAME, builtin.__name__, core.version(), "core", True)
        if os.environ.get(TRACE_ENV) == "1":
            self.pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.pm.enable_tracing()

    # --- loading ----------------------------------------------------------------

    @classmethod
    def from_file(
        cls, path: Path, extra: Sequence[tuple[str, object]] = (), core_settings: Settings | None = None
    ) -> PluginHost:
        host = cls(read_plugins_toml(path), core_settings)
        host.load_entry_points()
        for name, plugin in extra:
            host.register(name, plugin)
        host.configure()
        return host

    def _section(self, name: str) -> dict[str, Any]:
        section = self.config.get("plugins", {}).get(name, {})
        if not isinstance(section, dict):
            raise PluginError(f"plugin {name!r}: [plugins.{name}] in plugins.toml must be a table")
        return section

    def _enabled_in_config(self, name: str) -> bool:
        enabled = self._section(name).get("enabled", False)
        if not isinstance(enabled, bool):
            raise PluginError(f"plugin {name!r}: setting 'enabled' must be true or false")
        return enabled

    def discovered(self) -> Iterator[tuple[importlib.metadata.EntryPoint, str]]:
        autoload = os.environ.get(AUTOLOAD_OFF_ENV) != "1"
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            origin = "built-in" if ep.dist and ep.dist.name == "perezvon" else "entry point"
            if origin == "entry point" and not autoload:
                continue
            yield ep, origin

    def load_entry_points(self) -> None:
        for ep, origin in self.discovered():
            if ep.name in self.infos:
                raise PluginError(
                    f"plugin {ep.name!r}: two installed packages declare it "
                    f"({self.infos[ep.name].module} and {ep.value})"
                )
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                version=ep.dist.version if ep.dist else "?",
                origin=origin,
                enabled=self._enabled_in_config(ep.name),
            )
            self.infos[ep.name] = info
            if not info.enabled:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure names the plugin
                raise PluginError(
                    f"plugin {ep.name!r} failed to import ({ep.value}): {type(exc).__name__}: {exc}"
                ) from exc
            self._register(ep.name, plugin)

    def _register(self, name: str, plugin: object) -> None:
        self._folders.clear()
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # e.g. an argument its hook spec does not have
            raise PluginError(f"plugin {name!r}: {_one_line(exc)}") from None

    def register(self, name: str, plugin: object, version: str = "?") -> None:
        """Register a plugin object directly (tests, embedding). Enabled unless
        plugins.toml says ``enabled = false``."""
        section = self.config.get("plugins", {}).get(name, {})
        enabled = section.get("enabled", True)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.infos[name] = PluginInfo(name, module, version, "registered", enabled)
        if enabled:
            self._register(name, plugin)

    def _only(self, hook_name: str, plugin_name: str) -> pluggy.HookCaller:
        """A hook caller that reaches one plugin only (so it gets its own settings)."""
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin_name]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def configure(self) -> None:
        unknown = sorted(
            name
            for name, section in self.config.get("plugins", {}).items()
            if name not in self.infos and isinstance(section, dict) and section.get("enabled")
        )
        if unknown:
            raise PluginError(f"plugin {unknown[0]!r} is enabled in plugins.toml but not installed")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {self.pm.get_name(exc.plugin)!r}: {_one_line(exc)}") from None
        for name in self.enabled_names():
            info = self.infos[name]
            info.settings = self._validated_settings(name)
            info.hooks = sorted(self._hooks_of(name))
            self.registry.current_plugin = name
            for hook in registration_hooks(self.pm):
                self._only(hook, name)(registry=self.registry, settings=info.settings, core_settings=self.core_settings)
        self.registry.current_plugin = "?"
        for info in self.infos.values():
            info.kinds = self.registry.kinds_of(info.name) if info.enabled else []

    def _hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return [caller.name for caller in self.pm.get_hookcallers(plugin) or []]

    def _validated_settings(self, name: str) -> dict[str, Any]:
        raw = {k: v for k, v in self._section(name).items() if k != "enabled"}
        schema_cls = self._only("perezvon_settings_schema", name)()
        if schema_cls is None:
            if raw:
                field = sorted(raw)[0]
                raise PluginError(f"plugin {name!r}: setting {field!r} is not known (the plugin takes no settings)")
            return {}
        if not (isinstance(schema_cls, type) and issubclass(schema_cls, Schema)):
            raise PluginError(f"plugin {name!r}: perezvon_settings_schema must return a marshmallow Schema class")
        try:
            settings: dict[str, Any] = schema_cls().load(raw)
            return settings
        except ValidationError as exc:
            field, message = _flatten_errors(exc.messages)[0]
            raise PluginError(f"plugin {name!r}: setting {field!r} in plugins.toml: {message}") from None

    def enabled_names(self) -> list[str]:
        return [n for n, info in self.infos.items() if info.enabled]

    # --- typed facade over the hooks -----------------------------------------------

    def settings_of(self, name: str) -> dict[str, Any]:
        return self.infos[name].settings

    def each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call a hook plugin by plugin, each with its own settings."""
        for name in self.enabled_names():
            hook = self._only(hook_name, name)
            if not hook.get_hookimpls():
                continue
            call_kwargs = dict(kwargs)
            argnames = hook.spec.argnames if hook.spec else ()  # every hook called here has a spec
            if "settings" in argnames:
                call_kwargs["settings"] = self.infos[name].settings
            if "core_settings" in argnames:
                call_kwargs["core_settings"] = self.core_settings
            results = hook(**call_kwargs)
            yield name, results

    def commands(self) -> list[Command]:
        """Every enabled plugin's ``perezvon`` sub-commands (clashes are checked by the CLI, which knows its own)."""
        found: list[Command] = []
        for name in self.enabled_names():
            hook = self._only("perezvon_commands", name)
            if hook.get_hookimpls():
                registry = CommandRegistry(name)
                hook(commands=registry)
                found.extend(registry.commands)
        return found

    def routes(self) -> list[tuple[str, list[Any]]]:
        return [(name, [route for r in results for route in r or []]) for name, results in self.each("perezvon_routes")]

    def job_functions(self, periodic: dict[str, int] | None = None) -> dict[str, Any]:
        """Every plugin's arq jobs, named ``"<plugin>.<job>"``; ``periodic``, when given, is filled with
        the jobs to run every so many minutes (``JobRegistry.add(..., every_minutes=)``)."""
        jobs: dict[str, Any] = {}
        for name in self.enabled_names():
            hook = self._only("perezvon_jobs", name)
            if hook.get_hookimpls():
                hook(registry=JobRegistry(name, jobs, periodic), settings=self.infos[name].settings)
        return jobs

    def model_modules(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, results in self.each("perezvon_models"):
            modules = [module for r in results for module in r or []]
            if modules:
                out[name] = modules
        return out

    def servers(self, context: ServerContext) -> list[Server]:
        found: list[Server] = []
        for _, results in self.each("perezvon_servers", context=context):
            for result in results:
                found.extend(result or [])
        return found

    def demo_steps(self) -> list[Any]:
        return [step for _, results in self.each("perezvon_demo_steps") for r in results for step in (r or [])]

    def package_of(self, name: str) -> str | None:
        """The import package an enabled plugin lives in (``perezvon.plugins.widget`` for the
        module ``perezvon.plugins.widget.plugin``); None for a plugin object that is no module."""
        plugin = self.pm.get_plugin(name) if name in self.enabled_names() else None
        package = getattr(plugin, "__package__", None) if isinstance(plugin, ModuleType) else None
        return package or None

    def plugin_folders(self, folder: str) -> dict[str, tuple[str, Path]]:
        """Each enabled plugin's ``<package>/<folder>`` that exists (``static``, ``templates``,
        ``locales`` are found by this convention): plugin name -> (package, path)."""
        if folder in self._folders:  # the enabled plugins do not change after start-up
            return self._folders[folder]
        found: dict[str, tuple[str, Path]] = {}
        for name in self.enabled_names():
            package = self.package_of(name)
            if package is None:
                continue
            for root in getattr(sys.modules.get(package), "__path__", None) or []:
                path = Path(root) / folder
                if path.is_dir():
                    found[name] = (package, path)
                    break
        self._folders[folder] = found
        return found

    def telephony_backend(self) -> TelephonyBackend:
        backends = self.registry.telephony
        chosen = self.config.get("perezvon", {}).get("telephony")
        if chosen:
            if chosen not in backends:
                raise PluginError(
                    f"[perezvon] telephony = {chosen!r} in plugins.toml, but no enabled plugin "
                    f"registers that backend (registered: {', '.join(sorted(backends)) or 'none'})"
                )
            return backends[chosen]
        if len(backends) == 1:
            return next(iter(backends.values()))
        if not backends:
            raise PluginError(
                "no telephony backend is enabled: enable one in plugins.toml "
                "(the simulator for a demo, asterisk for a real PBX)"
            )
        raise PluginError(
            f"several telephony backends are enabled ({', '.join(sorted(backends))}): "
            'choose one with [perezvon] telephony = "..." in plugins.toml'
        )


def registry_with(name: str, plugin: object, settings: dict[str, Any] | None = None) -> Registry:
    """What one plugin registers when it alone is enabled with ``settings`` (its plugins.toml section).

    The plugin's settings schema checks ``settings`` exactly as at start-up, so a bad
    value raises the same :class:`~perezvon.api.PluginError`. Returns the
    :class:`~perezvon.api.Registry` its registration hooks filled.
    """
    host = PluginHost({"plugins": {name: {"enabled": True, **(settings or {})}}})
    host.register(name, plugin)
    host.configure()
    return host.registry
