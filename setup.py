"""Maps the repository's top-level folders onto one import package, ``perezvon``.

``core/``, ``hookspecs/``, ``plugins/`` and ``web/`` stay at the top of the
repository (the layout is fixed); installed -- as a wheel or editable -- they are
``perezvon.core``, ``perezvon.hookspecs``, ``perezvon.plugins`` and ``perezvon.web``
beside ``perezvon/`` itself (``perezvon.api``). Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("core", "hookspecs", "plugins", "web")

packages = ["perezvon"]
package_dir = {"perezvon": "perezvon"}
for folder in FOLDERS:
    package_dir[f"perezvon.{folder}"] = folder
    packages += [f"perezvon.{folder}", *(f"perezvon.{folder}.{sub}" for sub in find_packages(folder))]

setup(packages=packages, package_dir=package_dir)
