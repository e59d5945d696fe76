"""Lead sources: where leads come from (docs/plugins.md).

A lead source declares itself (key, title, Calltouch DTMF code), may run a
long-running server next to the web app (the site-forms SMTP intake is one),
and hands every lead to the core's intake function
(:meth:`perezvon.api.LeadIntake.submit`) -- it never writes calls itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from perezvon.core.registry import Registry, Server, ServerContext
    from perezvon.core.settings import Settings


@hookspec
def perezvon_register_lead_sources(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare the lead sources this plugin provides.

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_lead_source(LeadSource(...))``
    (see :class:`perezvon.api.LeadSource`: ``key``, ``title``,
    ``calltouch_code`` -- the DTMF auto-tag sent to Calltouch: widget 11, lead
    generator 12, mobile lead generator 13, mobile panel 14, site forms 15,
    other 16). ``settings`` -- this plugin's validated deployment settings.
    Returns: nothing. Two plugins declaring the same key stop start-up.
    """


@hookspec
def perezvon_servers(context: ServerContext, settings: dict[str, Any], core_settings: Settings) -> list[Server] | None:
    """Long-running servers this plugin runs next to the web app.

    When: once when ``perezvon serve`` starts (a plugin's own command, such
    as ``perezvon smtp``, may build its servers itself).
    Arguments: ``context`` -- a :class:`perezvon.api.ServerContext` with the
    lead intake, the host to bind and the ports asked for on the command line
    (``context.ports["smtp"]`` for ``--smtp-port``). ``settings`` -- this
    plugin's settings. ``core_settings`` -- the deployment's
    :class:`perezvon.api.Settings` (data dir, public URL, secret key).
    Returns: a list of :class:`perezvon.api.Server` objects; the core awaits
    ``start()`` on each before it reports ready and ``stop()`` on shutdown
    (Ctrl-C, SIGTERM or an error elsewhere).
    """
