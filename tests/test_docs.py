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


def test_examples_import_only_the_plugin_api():
    """An example imports Perezvon only through ``perezvon.api``, and only names it exports.

    ``perezvon.api`` is the one surface a plugin may use (tests/test_api_surface.py holds the
    built-in plugins to it); an example that imports ``perezvon.core`` or ``perezvon.hookspecs``
    would teach third parties the opposite. A block whose first line says it is
    ``not shipped with the plugin`` (a development-only config) is exempt.
    """
    from perezvon import api

    checked = 0
    for line, source in _python_blocks(_plugins_md()):
        if "not shipped with the plugin" in source.split("\n", 1)[0]:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "perezvon", (
                        f"docs/plugins.md:{line}: 'import {alias.name}': write 'from perezvon.api import ...'"
                    )
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "perezvon":
                assert node.module == "perezvon.api", (
                    f"docs/plugins.md:{line}: imports from {node.module}; plugins import only perezvon.api"
                )
                for alias in node.names:
                    assert alias.name in api.__all__, f"docs/plugins.md:{line}: perezvon.api has no {alias.name}"
                    checked += 1
    assert checked, "no example imports from perezvon.api: the check above checked nothing"


def _documented_arguments(section: str) -> list[str] | None:
    """The names in a hook section's ``**Arguments:**`` item, in order (None: no such item).

    Only top-level backticked names count: what is in parentheses describes an argument.
    """
    match = re.search(r"^- \*\*Arguments:\*\*(.*?)(?=^- \*\*|\Z)", section, re.M | re.S)
    if not match:
        return None
    text = " ".join(match.group(1).split())
    while True:
        flat = re.sub(r"\([^()]*\)", "", text)
        if flat == text:
            break
        text = flat
    if text.strip().rstrip(".").lower() == "none":
        return []
    return re.findall(r"`(\w+)`", text)


def _hook_sections() -> dict[str, tuple[str, str]]:
    """hook name -> (its ### heading, the text up to the next heading) in 'Every hook'."""
    body = _section(_plugins_md(), "Every hook")
    parts = re.split(r"^### (.+?)\s*$", body, flags=re.M)
    sections = {}
    for heading, text in zip(parts[1::2], parts[2::2]):
        names = HOOK_NAME.findall(heading)
        if len(names) == 1:
            sections[names[0]] = (heading, text)
    return sections


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_documents_exactly_its_spec_arguments(hook):
    """The **Arguments** item (and a signature in the heading or a ``def`` in the section, if any)
    names exactly the spec's parameters: a missing or an extra argument fails."""
    spec_args = list(inspect.signature(HOOKS[hook]).parameters)
    heading, text = _hook_sections()[hook]
    documented = _documented_arguments(text)
    assert documented is not None, f"docs/plugins.md, '### {heading}': no '- **Arguments:**' item"
    assert documented == spec_args, (
        f"docs/plugins.md, '### {heading}': Arguments lists {documented}, the spec takes {spec_args}"
    )
    signature = re.search(rf"{hook}\(([^)]*)\)", heading)
    if signature:
        in_heading = [a.split(":")[0].split("=")[0].strip() for a in signature.group(1).split(",") if a.strip()]
        assert in_heading == spec_args, f"docs/plugins.md, '### {heading}': the spec takes {spec_args}"
    for _line, source in _python_blocks(text):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name == hook:
                in_example = [a.arg for a in node.args.args]
                assert in_example == spec_args, (
                    f"docs/plugins.md, '### {heading}': the example takes {in_example}, the spec {spec_args}"
                )


def test_the_argument_parser_sees_nested_parentheses():
    # guards the test above: a name inside a description must not count as an argument
    text = "- **Arguments:** `registry` (call `registry.add(x)` with `a` (`b`)), `settings`.\n- **Returns:** x"
    assert _documented_arguments(text) == ["registry", "settings"]
    assert _documented_arguments("- **Arguments:** none.\n") == []


def test_example_hook_implementations_match_their_specs():
    """Every ``@hookimpl`` in an example is a real hook, not async, and takes only spec arguments."""
    for line, source in _python_blocks(_plugins_md()):
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            decorated = any(
                (d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)) == "hookimpl"
                or (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "hookimpl")
                for d in node.decorator_list
            )
            if not decorated:
                continue
            where = f"docs/plugins.md:{line}: {node.name}"
            assert node.name in HOOKS, f"{where} is not a hook spec"
            assert not isinstance(node, ast.AsyncFunctionDef), f"{where} must not be async def"
            spec_args = set(inspect.signature(HOOKS[node.name]).parameters)
            impl_args = {a.arg for a in node.args.args}
            assert impl_args <= spec_args, f"{where} takes {impl_args - spec_args}, not in the spec"
