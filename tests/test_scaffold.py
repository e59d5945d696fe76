"""``perezvon new-plugin``: a scaffolded plugin installs with pip, passes its own tests and runs end to end."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perezvon.core.testing import TEST_OUTGOING_ALLOW
from tests.test_cli import running_server
from tests.test_plugins import PERZVON, write_toml

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    parent = tmp_path_factory.mktemp("scaffold")
    made = subprocess.run(
        [*PERZVON, "new-plugin", "acme_crm", "--dir", str(parent)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    package = parent / "perezvon-acme-crm"
    assert f"Created {package}" in made.stdout
    subprocess.run([*PIP, "install", "--no-deps", "--no-build-isolation", str(package)], check=True)
    yield package
    subprocess.run([*PIP, "uninstall", "-y", "perezvon-acme-crm"], check=True)


def test_the_scaffold_is_a_complete_package(scaffolded):
    files = sorted(
        p.relative_to(scaffolded).as_posix()
        for p in scaffolded.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and ".egg-info" not in p.as_posix()
        and "build/" not in p.as_posix()
    )
    assert files == [
        "README.md",
        "perezvon_acme_crm/__init__.py",
        "perezvon_acme_crm/integration.py",
        "perezvon_acme_crm/locales/ru/LC_MESSAGES/messages.po",
        "perezvon_acme_crm/plugin.py",
        "pyproject.toml",
        "tests/test_perezvon_acme_crm.py",
    ]
    pyproject = (scaffolded / "pyproject.toml").read_text()
    assert '[project.entry-points.perezvon]\nacme_crm = "perezvon_acme_crm.plugin"' in pyproject
    assert "class AcmeCrmIntegration(Integration)" in (scaffolded / "perezvon_acme_crm/integration.py").read_text()


def test_the_installed_plugin_speaks_one_language_at_a_time(scaffolded):
    """Its settings page in Russian reads Russian: the catalog is installed with the package and found."""
    script = (
        "from perezvon_acme_crm.integration import AcmeCrmIntegration, ConnectionSettings\n"
        "from perezvon.core.i18n import plugin_gettext\n"
        "field = ConnectionSettings().fields['api_key']\n"
        "texts = [AcmeCrmIntegration.description, AcmeCrmIntegration.summary, field.metadata['label'],\n"
        "         field.metadata['help'], 'The key must not start or end with spaces.']\n"
        "for text in texts:\n"
        "    print(text, '=>', plugin_gettext(AcmeCrmIntegration, text, 'ru'))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        english, russian = line.split(" => ")
        assert russian != english and not any(
            "a" <= char.lower() <= "z" for char in russian.replace("API", "").replace("JSON", "")
        ), line


def test_the_scaffold_imports_only_perezvon_api_and_pins_this_release(scaffolded):
    """A new plugin starts on the stable surface: nothing of Perezvon's but ``perezvon.api``, in code and tests."""
    ours = set()
    for path in scaffolded.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                ours |= {node.module} if node.module.split(".")[0] == "perezvon" else set()
            elif isinstance(node, ast.Import):
                ours |= {alias.name for alias in node.names if alias.name.split(".")[0] == "perezvon"}
    assert ours == {"perezvon.api"}
    major, minor = (int(part) for part in importlib.metadata.version("perezvon").split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    assert f'"perezvon>={major}.{minor},<{upper}"' in (scaffolded / "pyproject.toml").read_text()


def test_bad_names_and_existing_directories_are_refused(scaffolded):
    bad = subprocess.run([*PERZVON, "new-plugin", "Acme-CRM"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "lowercase letters" in bad.stderr
    again = subprocess.run(
        [*PERZVON, "new-plugin", "acme_crm", "--dir", str(scaffolded.parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_the_scaffolded_tests_pass(scaffolded):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=scaffolded,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_the_installed_plugin_is_enabled_and_its_hooks_fire_on_a_lead(scaffolded, tmp_path):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    toml = write_toml(
        tmp_path,
        f"""
        [plugins.simulator]
        enabled = true
        speed = 2000

        [plugins.acme_crm]
        enabled = true
        endpoint = "http://127.0.0.1:{receiver.server_port}/leads"
    """,
    )
    env = {
        **os.environ,
        "PEREZVON_PLUGINS": str(toml),
        "PEREZVON_DATA_DIR": str(tmp_path / "var"),
        "PEREZVON_LOG_LEVEL": "WARNING",
        # the receiver is on 127.0.0.1: the server is a deployment, so the tests' allow-list goes in its environment
        "PEREZVON_OUTGOING_ALLOW": ",".join(TEST_OUTGOING_ALLOW),
    }
    env.pop("PEREZVON_DATABASE_URL", None), env.pop("PEREZVON_REDIS_URL", None)
    listed = subprocess.run(
        [*PERZVON, "plugins", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["acme_crm"]["enabled"] is True and rows["acme_crm"]["kinds"] == ["integration"]
    try:
        with running_server(env, tmp_path) as (base_url, demo, client):
            lead = client.post(
                f"{base_url}/api/v1/leads", json={"token": demo["site_token"], "phone": "+79161230077", "consent": True}
            )
            assert lead.status_code == 201
            deadline = time.monotonic() + 30
            while len(_Receiver.received) < 2:
                assert time.monotonic() < deadline, _Receiver.received
                time.sleep(0.1)
    finally:
        receiver.shutdown()
    events = {body["event"]: (path, body) for path, body in _Receiver.received}
    assert set(events) == {"lead_created", "call_finished"}
    assert events["lead_created"][0] == "/leads" and events["lead_created"][1]["phone"] == "+79161230077"
    assert events["call_finished"][1]["status"] == "successful"
