"""Applications: what the site script shows visitors (docs/site-script.md).

An application (widget, lead generator, mobile panel, ...) is switched on per
connection and carries per-connection settings validated by its own schema.
It contributes client-side code loaded by the site script and the
per-connection config that code needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from perezvon.core.registry import Registry
    from perezvon.core.settings import Settings


@hookspec
def perezvon_register_applications(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare the site applications this plugin provides.

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_application(app)`` with an
    instance of a :class:`perezvon.api.Application` subclass: ``key``,
    ``title``, ``description``, ``summary`` (a short line for its card), ``lead_source`` (the key of the lead source its
    leads carry), ``settings_schema`` (marshmallow schema of the
    per-connection settings; its ``load({})`` gives the defaults),
    ``client_script`` (path of the JavaScript the site script loads) and
    ``client_config(connection, settings)`` (the JSON the client code gets).
    ``core_settings`` -- the deployment's :class:`perezvon.api.Settings`
    (data dir, public URL, secret key). ``settings`` -- this plugin's deployment settings.
    Returns: nothing. Duplicate keys stop start-up.
    """
