"""The plugin docs must not drift from the hook specs (cf. datasette's test_docs.py)."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from perezvon import hookspecs
from perezvon.hookspecs.markers import PROJECT

DOCS = Path(__file__).resolve().parent.parent / "docs"
PLUGINS_MD = DOCS / "plugins.md"
SPEC_ATTR = f"{PROJECT}_spec"  # the attribute pluggy's HookspecMarker puts on a spec
HOOK_NAME = re.compile(r"\bperezvon_\w+")


def _hook_specs() -> dict[str, object]:
    specs = {}
    for module in hookspecs.SPEC_MODULES:
        for name, obj in vars(module).items():
            if name.startswith("perezvon_") and callable(obj) and hasattr(obj, SPEC_ATTR):
                assert name not in specs, f"hook {name} is declared twice"
                specs[name] = obj
    return specs


HOOKS = _hook_specs()


def _plugins_md() -> str:
    return PLUGINS_MD.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/plugins.md has no '## {title}' section"
    return match.group(1)


def _h3_headings(text: str) -> list[str]:
    return re.findall(r"^### (.+?)\s*$", text, re.M)


def _python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, source) of every ```python fenced block."""
    blocks = []
    for match in re.finditer(r"^```python[ \t]*\n(.*?)^```", text, re.M | re.S):
        blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return blocks


def test_hook_specs_are_found():
    # guards the other tests against silently iterating over nothing
    assert len(HOOKS) >= 10
    assert "perezvon_settings_schema" in HOOKS and "perezvon_register_telephony" in HOOKS


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_heading(hook):
    headings = _h3_headings(_section(_plugins_md(), "Every hook"))
    named = {name for heading in headings for name in HOOK_NAME.findall(heading)}
    assert hook in named, f"docs/plugins.md, section 'Every hook', needs a '### `{hook}`' heading"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_has_a_docstring(hook):
    doc = inspect.getdoc(HOOKS[hook])
    assert doc and doc.strip(), f"hook spec {hook} has no docstring"
    for part in ("When:", "Arguments:", "Returns:"):
        assert part in doc, f"the docstring of hook spec {hook} must say '{part}'"


def test_no_stale_hook_headings():
    headings = _h3_headings(_section(_plugins_md(), "Every hook"))
    assert headings, "the 'Every hook' section has no ### headings"
    for heading in headings:
        names = HOOK_NAME.findall(heading)
        assert len(names) == 1, f"heading '### {heading}' must name exactly one hook"
        assert names[0] in HOOKS, f"heading '### {heading}' documents a hook that does not exist"
    assert len(headings) == len(set(headings)), "a hook is documented twice"


def test_python_examples_compile():
    blocks = _python_blocks(_plugins_md())
    assert blocks, "docs/plugins.md has no python examples"
    for line, source in blocks:
        compile(source, f"docs/plugins.md:{line}", "exec")


def test_examples_import_names_that_exist():
    """``from hookspecs/core.registry import X`` in an example must name something real."""
    import importlib

    for line, source in _python_blocks(_plugins_md()):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module == "hookspecs" or node.module.startswith(("hookspecs.", "core."))):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"docs/plugins.md:{line}: {node.module} has no {alias.name}")


def test_example_hook_implementations_match_their_specs():
    """Every ``@hookimpl`` in an example is a real hook, not async, and takes only spec arguments."""
    for line, source in _python_blocks(_plugins_md()):
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            decorated = any(
                (d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)) == "hookimpl"
                or (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "hookimpl")
                for d in node.decorator_list)
            if not decorated:
                continue
            where = f"docs/plugins.md:{line}: {node.name}"
            assert node.name in HOOKS, f"{where} is not a hook spec"
            assert not isinstance(node, ast.AsyncFunctionDef), f"{where} must not be async def"
            spec_args = set(inspect.signature(HOOKS[node.name]).parameters)
            impl_args = {a.arg for a in node.args.args}
            assert impl_args <= spec_args, f"{where} takes {impl_args - spec_args}, not in the spec"
