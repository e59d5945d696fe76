"""Integrations: where leads and call results are reported (docs/integrations.md, docs/webhooks.md).

An integration (Yandex Metrika, Google Analytics, Calltouch, CoMagic, a signed
webhook, ...) is switched on per connection with settings validated by its own
schema. Server-side pushes run as one arq job per delivery, retried with
back-off, so a failing integration never delays a callback nor another
integration. Client-side goals are contributed to the site script.

Notifiers (e-mail, SMS, Telegram) are declared here too: they are how the core
tells people about calls (docs/calls.md#notifications).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from perezvon.core.registry import Registry
    from perezvon.core.settings import Settings


@hookspec
def perezvon_register_integrations(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare the integrations this plugin provides.

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_integration(integration)``
    with an instance of a :class:`perezvon.api.Integration` subclass:
    ``key``, ``title``, ``settings_schema`` (per-connection; fields with
    ``metadata={"secret": True}`` are masked as ``****`` and never sent back
    to a browser), ``client_events(settings)`` (goal ids the site script
    reaches, docs/integrations.md), ``description`` (what to set up in the service, on its settings page), ``summary`` (one short line
    for its card; both English message ids translated by the plugin's ``locales/``), and
    the async event handlers ``on_lead_created(event)``,
    ``on_attempt_finished(event)`` and ``on_call_finished(event)`` run in the
    worker, one arq job each, queued only for the handlers a class overrides.
    A handler raises :class:`perezvon.api.DeliveryError` with
    ``retry=True`` for network errors and 5xx (retried with back-off) and
    ``retry=False`` for 4xx; each try is stored as a delivery record.
    ``core_settings`` -- the deployment's :class:`perezvon.api.Settings`
    (data dir, public URL, secret key). ``settings`` -- this plugin's deployment settings.
    Returns: nothing. Duplicate keys stop start-up.
    """


@hookspec
def perezvon_register_notifiers(registry: Registry, settings: dict[str, Any], core_settings: Settings) -> None:
    """Declare notification channels (e-mail, SMS, ...).

    When: once at start-up, for each enabled plugin.
    Arguments: ``registry`` -- call ``registry.add_notifier(notifier)`` with a
    :class:`perezvon.api.Notifier`: ``key`` and
    ``async send(notification)``; the core sends every
    :class:`perezvon.api.Notification` (``kind`` one of
    ``"call_succeeded"``, ``"call_failed"``, ``"lead_delayed"``,
    ``"activation"``, ``"site_snippet"``, and ``"lead_created"`` for each new lead
    to a notifier whose ``wants_new_leads()`` is true; recipients; the call or user it is
    about) to every registered notifier, each as its own retried job.
    ``core_settings`` -- the deployment's :class:`perezvon.api.Settings`
    (data dir, public URL, secret key). ``settings`` -- this plugin's deployment settings.
    Returns: nothing.
    """
