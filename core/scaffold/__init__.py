"""``perezvon new-plugin NAME``: a pip-installable integration plugin package, from Jinja2 templates.

The templates live in ``core/scaffold/integration/``; ``PACKAGE`` in a path becomes the
package name and the ``.j2`` suffix is dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).with_name("integration")
NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")


class ScaffoldError(ValueError):
    pass


def names(name: str) -> dict[str, str]:
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r}: a plugin name is 2-40 lowercase letters, digits and underscores, "
            "starting with a letter (e.g. my_crm)"
        )
    return {
        "name": name,
        "package": f"perezvon_{name}",
        "distribution": "perezvon-" + name.replace("_", "-"),
        "class_name": "".join(part.capitalize() for part in name.split("_")) + "Integration",
        "title": " ".join(part.capitalize() for part in name.split("_")),
        "perezvon_requirement": perezvon_requirement(),
    }


def perezvon_requirement() -> str:
    """The Perezvon releases a new plugin may run on: this release's plugin API, up to its next major version.

    The range is that of the Perezvon installed now (``>=0.2,<0.3`` while Perezvon
    is 0.x, where a minor release may change the API; ``>=1.4,<2`` from 1.0 on).
    """
    from perezvon.core import version

    release = [int(part) for part in re.findall(r"\d+", version())[:2]] + [0, 0]
    major, minor = release[0], release[1]
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"perezvon>={major}.{minor},<{upper}"


def scaffold(name: str, parent: Path) -> Path:
    """Write the package into ``parent/<distribution>/``; returns that directory. Never overwrites."""
    context = names(name)
    target = parent / context["distribution"]
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or directory")
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
    )  # noqa: S701 - the output is Python and TOML, not HTML
    for template in sorted(TEMPLATES.rglob("*.j2")):
        relative = template.relative_to(TEMPLATES).as_posix()
        out = target / relative.replace("PACKAGE", context["package"]).removesuffix(".j2")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(env.get_template(relative).render(**context), encoding="utf-8")
    return target
