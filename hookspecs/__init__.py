"""The contract between the Perezvon core and its plugins.

One module per plugin family -- :mod:`perezvon.hookspecs.lead_sources`,
:mod:`perezvon.hookspecs.applications`, :mod:`perezvon.hookspecs.telephony`,
:mod:`perezvon.hookspecs.integrations` -- plus :mod:`perezvon.hookspecs.plugin` for hooks any
plugin may implement whatever its family.

Registration hooks are called once per plugin at start-up with that plugin's
validated deployment settings (its section of ``plugins.toml``), and add
objects to a registry; those objects then do the work with async methods.
Pluggy itself is synchronous: never make a hook implementation ``async def``.
"""

from perezvon.hookspecs import applications, integrations, lead_sources, plugin, telephony
from perezvon.hookspecs.markers import PROJECT, hookimpl, hookspec

#: every module that declares hooks, in the order the docs list them
SPEC_MODULES = (plugin, lead_sources, applications, telephony, integrations)

__all__ = ["PROJECT", "SPEC_MODULES", "hookimpl", "hookspec"]
