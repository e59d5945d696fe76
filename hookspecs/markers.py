"""Pluggy markers for the ``perezvon`` project.

Plugins import ``hookimpl`` from ``hookspecs`` and decorate their hook
implementations with it; the core uses ``hookspec`` to declare the contract.
"""

import pluggy

PROJECT = "perezvon"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
