"""Built-in plugins are held to the contract a third party gets: they import ``perezvon.api`` and nothing else of ours.

A built-in plugin may import its own modules, and another built-in plugin's (the lead
generator reuses the widget's rule fields, as a third-party app may depend on a
published plugin package); never ``perezvon.core``, ``perezvon.web`` or
``perezvon.hookspecs`` directly. So everything a plugin needs has to be in
``perezvon.api``, and a third party can do whatever a built-in one does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import perezvon.api

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_FILES = sorted((ROOT / "plugins").rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def allowed(module: str) -> bool:
    if module == "perezvon.api" or module.startswith("perezvon.plugins."):
        return True
    return module != "perezvon" and not module.startswith("perezvon.")


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_built_in_plugin_imports_nothing_of_ours_but_perezvon_api(path):
    outside = [f"line {line}: {module}" for line, module in imported_modules(path) if not allowed(module)]
    assert not outside, f"{path.relative_to(ROOT)} imports past perezvon.api: {outside}"


def test_the_api_exports_exactly_what_it_lists():
    exported = set(perezvon.api.__all__)
    assert len(exported) == len(perezvon.api.__all__), "a name is listed twice in __all__"
    missing = [name for name in exported if not hasattr(perezvon.api, name)]
    assert not missing
    # (pytest rewrites the modules of its plugin packages, perezvon among them, adding "@py_*" names)
    public = {name for name in vars(perezvon.api) if not name.startswith(("_", "@"))} - {"annotations"}
    assert public == exported, f"public but not in __all__: {sorted(public - exported)}"
    assert perezvon.api.PLUGIN_API_VERSION.count(".") == 1
    assert all(part.isdigit() for part in perezvon.api.PLUGIN_API_VERSION.split("."))


def test_importing_the_api_loads_neither_the_web_app_nor_pytest():
    """A plugin imports the API in a worker or an SMTP process too: it must stay light."""
    code = "import sys, perezvon.api; print(sorted(m for m in sys.modules if m.startswith(('perezvon.web', 'pytest'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_import_package_is_installed():
    """The four folders are importable only under ``perezvon``: no top-level ``core`` or ``web`` of ours."""
    code = (
        "import importlib.util, os, sys; sys.path = [p for p in sys.path if p not in ('', os.getcwd())]; "
        "print([n for n in ('core', 'web', 'plugins', 'hookspecs') if importlib.util.find_spec(n)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout
    assert out.strip() == "[]"
