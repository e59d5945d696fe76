"""The plugin host: discovery, plugins.toml, settings errors, and a real third-party package."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perezvon.core.plugins import PluginHost
from perezvon.core.registry import PluginError, TelephonyBackend
from perezvon.hookspecs import hookimpl, hookspec

ROOT = Path(__file__).resolve().parent.parent
PERZVON = [sys.executable, "-m", "perezvon.core.cli"]


def write_toml(tmp_path, text):
    path = tmp_path / "plugins.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_built_in_plugins_are_discovered_through_entry_points(tmp_path):
    host = PluginHost.from_file(
        write_toml(
            tmp_path,
            """
        [plugins.simulator]
        enabled = true
        speed = 10
    """,
        )
    )
    info = host.infos["simulator"]
    assert (info.origin, info.enabled, info.kinds) == ("built-in", True, ["telephony backend"])
    assert info.settings["speed"] == 10 and info.settings["ring_seconds"] == 3.0  # default filled in
    assert host.telephony_backend().key == "simulator"
    assert host.infos["core"].origin == "core" and "lead source" in host.infos["core"].kinds


def test_a_plugin_not_enabled_is_listed_but_not_loaded(tmp_path):
    host = PluginHost.from_file(write_toml(tmp_path, "[plugins.simulator]\nenabled = false\n"))
    assert host.infos["simulator"].enabled is False
    assert "simulator" not in host.registry.telephony
    with pytest.raises(PluginError, match="no telephony backend is enabled"):
        host.telephony_backend()


@pytest.mark.parametrize(
    "settings, message",
    [
        ('ring_seconds = "fast"', "plugin 'simulator': setting 'ring_seconds' in plugins.toml: Not a valid number."),
        ('rules = [{leg = "client", suffix = "12", status = 99}]', "plugin 'simulator': setting 'rules.0.status'"),
        ('rules = [{leg = "nobody", suffix = "12", status = 486}]', "plugin 'simulator': setting 'rules.0.leg'"),
        ("enabled = 1", "plugin 'simulator': setting 'enabled' must be true or false"),
    ],
)
def test_bad_settings_name_the_plugin_and_the_field(tmp_path, settings, message):
    text = "[plugins.simulator]\n" + ("" if settings.startswith("enabled") else "enabled = true\n") + settings + "\n"
    with pytest.raises(PluginError) as caught:
        PluginHost.from_file(write_toml(tmp_path, text))
    assert str(caught.value).startswith(message)


def test_enabling_a_plugin_that_is_not_installed_is_an_error(tmp_path):
    with pytest.raises(PluginError, match=r"plugin 'nowhere' is enabled in plugins\.toml but not installed"):
        PluginHost.from_file(write_toml(tmp_path, "[plugins.nowhere]\nenabled = true\n"))


def test_a_missing_or_broken_plugins_file_is_a_clear_error(tmp_path):
    with pytest.raises(PluginError, match="not found"):
        PluginHost.from_file(tmp_path / "absent.toml")
    with pytest.raises(PluginError, match="not valid TOML"):
        PluginHost.from_file(write_toml(tmp_path, "[plugins.simulator\n"))


def test_two_plugins_registering_the_same_key_stop_start_up(tmp_path):
    class Twin(TelephonyBackend):
        key = "simulator"
        title = "Twin"

    class TwinPlugin:
        @hookimpl
        def perezvon_register_telephony(self, registry):
            registry.add_telephony(Twin())

    with pytest.raises(
        PluginError, match="'twin': telephony backend 'simulator' is already registered by plugin 'simulator'"
    ):
        PluginHost.from_file(
            write_toml(tmp_path, "[plugins.simulator]\nenabled = true\n"), extra=[("twin", TwinPlugin())]
        )


def test_a_misspelled_hook_stops_start_up_naming_the_plugin(tmp_path):
    class Typo:
        @hookimpl
        def perezvon_rutes(self):
            return []

    with pytest.raises(PluginError, match="plugin 'typo': unknown hook 'perezvon_rutes'"):
        PluginHost.from_file(write_toml(tmp_path, ""), extra=[("typo", Typo())])


def test_an_argument_the_spec_lacks_is_refused(tmp_path):
    class Extra:
        @hookimpl
        def perezvon_routes(self, settings, surprise):
            return []

    with pytest.raises(PluginError, match=r"plugin 'extra'.*surprise"):
        PluginHost.from_file(write_toml(tmp_path, ""), extra=[("extra", Extra())])


def test_several_backends_need_a_choice(tmp_path):
    class Other(TelephonyBackend):
        key = "other"
        title = "Other"

    class OtherPlugin:
        @hookimpl
        def perezvon_register_telephony(self, registry):
            registry.add_telephony(Other())

    toml = write_toml(tmp_path, "[plugins.simulator]\nenabled = true\n")
    with pytest.raises(PluginError, match="several telephony backends"):
        PluginHost.from_file(toml, extra=[("other", OtherPlugin())]).telephony_backend()
    toml.write_text('[perezvon]\ntelephony = "other"\n[plugins.simulator]\nenabled = true\n')
    assert PluginHost.from_file(toml, extra=[("other", OtherPlugin())]).telephony_backend().key == "other"


# --- a real third-party package, built and pip-installed -------------------------------

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "perezvon-hello-test"
version = "1.2.3"

[project.entry-points.perezvon]
hello = "hello_plugin.plugin"
hello_broken = "hello_plugin.broken"
hello_smtp = "hello_plugin.clash"
"""

PLUGIN_CODE = '''
"""A tiny third-party Perezvon plugin: an integration that records events to a file, and a route."""
import json
from pathlib import Path

from marshmallow import Schema, fields
from starlette.responses import JSONResponse
from starlette.routing import Route

from perezvon.core.registry import Integration, Server
from perezvon.hookspecs import hookimpl


class HelloSettings(Schema):
    greeting = fields.String(required=True)
    events_file = fields.String(required=True)
    echo_port = fields.Integer(load_default=None)


class EchoServer(Server):
    """A long-running server next to the web app: answers each line with the greeting."""
    name = "hello-echo"

    def __init__(self, host, port, greeting):
        self.host, self.port, self.greeting = host, port, greeting
        self.server = None

    async def start(self):
        import asyncio

        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(f"{self.greeting}, {line.decode().strip()}\\n".encode())
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, self.host, self.port)

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    def describe(self):
        return f"hello echo on {self.host}:{self.port}"


class Recorder(Integration):
    key = "hello"
    title = "Hello recorder"
    settings_schema = Schema

    def __init__(self, path):
        self.path = Path(path)

    def _write(self, event):
        with self.path.open("a") as fh:
            fh.write(json.dumps({"event": event.event, "phone": event.lead["phone"],
                                 "status": event.call["display_status"]}) + "\\n")
        return "recorded"

    async def on_lead_created(self, event):
        return self._write(event)

    async def on_call_finished(self, event):
        return self._write(event)


@hookimpl
def perezvon_settings_schema():
    return HelloSettings


@hookimpl
def perezvon_register_integrations(registry, settings):
    registry.add_integration(Recorder(settings["events_file"]))


@hookimpl
def perezvon_servers(context, settings):
    if settings["echo_port"]:
        return [EchoServer(context.host, settings["echo_port"], settings["greeting"])]
    return []


@hookimpl
def perezvon_routes(settings):
    async def ping(request):
        return JSONResponse({"greeting": settings["greeting"]})
    return [Route("/ping", ping)]


def greet_arguments(parser):
    parser.add_argument("--name", required=True)


async def greet(context):
    """`perezvon greet`: started like the built-in commands, with this plugin's settings."""
    from perezvon.api import Connection

    app = await context.start(migrate=True)
    connections = await Connection.all().count()
    print(f"{context.plugin_settings['greeting']}, {context.args.name}! "
          f"intake={app.intake is not None} connections={connections} data_dir={context.settings.data_dir.name}")
    return 3 if context.args.name == "three" else None


def hello_version(context):
    print("hello 1.2.3")


@hookimpl
def perezvon_commands(commands):
    commands.add("greet", greet, help="greet someone", arguments=greet_arguments)
    commands.add("hello-version", hello_version)
'''


CLASHING_CODE = """
from perezvon.api import hookimpl


@hookimpl
def perezvon_commands(commands):
    commands.add("smtp", lambda context: print("not the real one"))
"""


@pytest.fixture(scope="module")
def hello_package(tmp_path_factory):
    src = tmp_path_factory.mktemp("hello-plugin")
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "hello_plugin").mkdir()
    (src / "hello_plugin" / "__init__.py").write_text("")
    (src / "hello_plugin" / "plugin.py").write_text(PLUGIN_CODE)
    (src / "hello_plugin" / "broken.py").write_text("import module_that_does_not_exist\n")
    (src / "hello_plugin" / "clash.py").write_text(CLASHING_CODE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(src)], check=True)
    yield src
    subprocess.run([*pip, "uninstall", "-y", "perezvon-hello-test"], check=True)


def run_cli(args, env, cwd, **kw):
    return subprocess.run([*PERZVON, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)


def test_a_pip_installed_plugin_is_discovered_enabled_and_called(hello_package, tmp_path):
    from tests.test_cli import free_port, running_server  # noqa: PLC0415 - shared helpers

    events = tmp_path / "events.jsonl"
    echo_port = free_port()
    toml = write_toml(
        tmp_path,
        f"""
        [plugins.simulator]
        enabled = true
        speed = 2000

        [plugins.hello]
        enabled = true
        greeting = "Привет"
        events_file = "{events}"
        echo_port = {echo_port}
    """,
    )
    env = {
        **os.environ,
        "PEREZVON_PLUGINS": str(toml),
        "PEREZVON_DATA_DIR": str(tmp_path / "var"),
        "PEREZVON_LOG_LEVEL": "WARNING",
    }
    env.pop("PEREZVON_DATABASE_URL", None), env.pop("PEREZVON_REDIS_URL", None)

    listed = run_cli(["plugins", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["hello"]["origin"] == "entry point" and rows["hello"]["enabled"] is True
    assert rows["hello"]["version"] == "1.2.3" and rows["hello"]["kinds"] == ["integration"]
    assert "perezvon_register_integrations" in rows["hello"]["hooks"]
    assert rows["hello_broken"]["enabled"] is False  # installed, not switched on: never imported
    table = run_cli(["plugins"], env, tmp_path).stdout
    assert "hello" in table and "entry point" in table and "simulator" in table

    # the plugin's hooks run inside a real server: its route, its own server, its integration on a lead
    with running_server(env, tmp_path) as (base_url, demo, client):
        assert client.get(f"{base_url}/p/hello/ping").json() == {"greeting": "Привет"}
        with socket.create_connection(("127.0.0.1", echo_port), timeout=5) as conn:
            conn.sendall("Вера\n".encode())
            assert conn.makefile(encoding="utf-8").readline() == "Привет, Вера\n"
        lead = client.post(
            f"{base_url}/api/v1/leads", json={"token": demo["site_token"], "phone": "+79161234567", "consent": True}
        )
        assert lead.status_code == 201
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not events.exists() or len(events.read_text().splitlines()) < 2):
            time.sleep(0.1)
    with pytest.raises(OSError):  # serve stopped the plugin's server with everything else
        socket.create_connection(("127.0.0.1", echo_port), timeout=2)
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert {"event": "lead_created", "phone": "+79161234567", "status": "pending"} in recorded
    assert {"event": "call_finished", "phone": "+79161234567", "status": "successful"} in recorded


def test_a_plugin_that_fails_to_import_stops_start_up_with_one_message(hello_package, tmp_path):
    toml = write_toml(tmp_path, "[plugins.hello_broken]\nenabled = true\n")
    env = {**os.environ, "PEREZVON_PLUGINS": str(toml), "PEREZVON_DATA_DIR": str(tmp_path / "var")}
    result = run_cli(["plugins"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "perezvon: error: plugin 'hello_broken' failed to import (hello_plugin.broken): "
        "ModuleNotFoundError: No module named 'module_that_does_not_exist'"
    )


def test_bad_settings_of_a_third_party_plugin_stop_serve(hello_package, tmp_path):
    toml = write_toml(
        tmp_path, "[plugins.simulator]\nenabled = true\n[plugins.hello]\nenabled = true\nevents_file = 'x'\n"
    )
    env = {**os.environ, "PEREZVON_PLUGINS": str(toml), "PEREZVON_DATA_DIR": str(tmp_path / "var")}
    result = run_cli(["serve", "--port", "0"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "perezvon: error: plugin 'hello': setting 'greeting' in plugins.toml: Missing data for required field."
    )


def test_autoload_can_be_switched_off(hello_package, tmp_path):
    toml = write_toml(tmp_path, "[plugins.simulator]\nenabled = true\n")
    env = {**os.environ, "PEREZVON_PLUGINS": str(toml), "PEREZVON_DISABLE_PLUGIN_AUTOLOAD": "1"}
    names = {row["name"] for row in json.loads(run_cli(["plugins", "--json"], env, tmp_path).stdout)}
    assert "simulator" in names and "hello" not in names


def test_a_plugin_adds_commands_that_run_with_the_app_and_its_settings(hello_package, tmp_path):
    toml = write_toml(
        tmp_path,
        """
        [plugins.simulator]
        enabled = true

        [plugins.hello]
        enabled = true
        greeting = "Привет"
        events_file = "unused"
    """,
    )
    env = {**os.environ, "PEREZVON_PLUGINS": str(toml), "PEREZVON_LOG_LEVEL": "WARNING"}
    env.pop("PEREZVON_DATABASE_URL", None), env.pop("PEREZVON_REDIS_URL", None)

    helped = run_cli(["--help"], env, tmp_path)
    assert helped.returncode == 0 and "greet someone [plugin hello]" in helped.stdout
    assert "hello-version" in helped.stdout
    assert "--name NAME" in run_cli(["greet", "--help"], env, tmp_path).stdout

    # the common options reach the command's settings; the app is started (database migrated, intake built)
    greeted = run_cli(["greet", "--name", "Вера", "--data-dir", str(tmp_path / "mine")], env, tmp_path)
    assert greeted.returncode == 0, greeted.stderr
    assert greeted.stdout.strip() == "Привет, Вера! intake=True connections=0 data_dir=mine"
    assert (tmp_path / "mine" / "perezvon.sqlite3").exists()
    assert run_cli(["greet", "--name", "three", "--data-dir", str(tmp_path / "mine")], env, tmp_path).returncode == 3
    plain = run_cli(["hello-version"], env, tmp_path)  # a plain (not async) handler
    assert (plain.returncode, plain.stdout) == (0, "hello 1.2.3\n")

    # switched off: its commands are not offered
    toml.write_text("[plugins.simulator]\nenabled = true\n")
    missing = run_cli(["greet", "--name", "Вера"], env, tmp_path)
    assert missing.returncode == 2 and "invalid choice: 'greet'" in missing.stderr
    assert "greet" not in run_cli(["--help"], env, tmp_path).stdout


class _Clashing:
    def __init__(self, name):
        self.name = name

    @hookimpl
    def perezvon_commands(self, commands):
        commands.add(self.name, lambda context: 0, help="clashes")


def test_a_command_name_taken_twice_is_refused_naming_both(tmp_path):
    from perezvon.core.cli import build_parser

    toml = write_toml(tmp_path, "")
    host = PluginHost.from_file(toml, extra=[("first", _Clashing("sync")), ("second", _Clashing("sync"))])
    with pytest.raises(PluginError) as clash:
        build_parser(host.commands())
    assert str(clash.value) == "plugins 'first' and 'second' both add the command 'perezvon sync'"

    host = PluginHost.from_file(toml, extra=[("third", _Clashing("migrate"))])
    with pytest.raises(PluginError) as built_in:
        build_parser(host.commands())
    assert str(built_in.value) == "plugin 'third' adds the command 'perezvon migrate', but that is a built-in command"


def test_a_command_clash_stops_the_real_command_line(hello_package, tmp_path):
    """An installed plugin adding `smtp` next to siteforms: every `perezvon` run refuses, naming both."""
    toml = write_toml(
        tmp_path,
        """
        [plugins.siteforms]
        enabled = true
        domain = "forms.example.com"

        [plugins.hello_smtp]
        enabled = true
    """,
    )
    env = {**os.environ, "PEREZVON_PLUGINS": str(toml)}
    result = run_cli(["plugins"], env, tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() in (
        "perezvon: error: plugins 'siteforms' and 'hello_smtp' both add the command 'perezvon smtp'",
        "perezvon: error: plugins 'hello_smtp' and 'siteforms' both add the command 'perezvon smtp'",
    )
    # without siteforms the plugin's `smtp` is an ordinary plugin command
    toml.write_text("[plugins.hello_smtp]\nenabled = true\n")
    alone = run_cli(["smtp"], env, tmp_path)
    assert (alone.returncode, alone.stdout) == (0, "not the real one\n"), alone.stderr


class _GreetingSpecs:
    """A spec module a future family would add: a registration hook nobody lists by hand."""

    @staticmethod
    @hookspec
    def perezvon_register_greetings(registry, settings, core_settings):
        """Declare greetings."""


def test_registration_hooks_are_read_from_the_specs(tmp_path):
    from perezvon.core.plugins import registration_hooks

    called = []

    class Greeter:
        @hookimpl
        def perezvon_register_greetings(self, registry, settings):
            called.append((registry.current_plugin, settings))

    host = PluginHost({"plugins": {}})
    assert "perezvon_register_telephony" in registration_hooks(host.pm)
    assert "perezvon_register_greetings" not in registration_hooks(host.pm)
    host.pm.add_hookspecs(_GreetingSpecs)
    assert registration_hooks(host.pm)[-1] == "perezvon_register_greetings"
    host.register("greeter", Greeter())
    host.configure()
    assert called == [("greeter", {})]
