"""The one module a Perezvon plugin imports.

Everything a plugin -- built-in or third-party -- may rely on is re-exported
here, and nothing else is a promise: the modules under ``perezvon.core`` and
``perezvon.web`` change without notice. The built-in plugins are held to this
surface by ``tests/test_api_surface.py``, as a third party would be.

:data:`PLUGIN_API_VERSION` is ``MAJOR.MINOR``: a minor step only adds names or
optional arguments; a major step removes or changes something. A plugin package
pins the Perezvon releases it was written for (``perezvon new-plugin`` writes the
range), and may check ``PLUGIN_API_VERSION`` at import time.

What is here, by purpose:

* hook markers -- :data:`hookimpl` (and :data:`PROJECT`, the entry-point group);
* what registration hooks add to -- :class:`Registry`, :class:`JobRegistry`,
  :class:`CommandRegistry` (``perezvon`` sub-commands, whose handlers get a :class:`CommandContext`);
* base classes and their data types, one family at a time: lead sources
  (:class:`LeadSource`, :class:`Server`, :class:`ServerContext`,
  :class:`IntakeError`, :class:`IntakeReason`, and for one fed by the PBX's missed inbound calls
  :class:`MissedCallSource` with :class:`InboundCall` (since 1.4)), applications (:class:`Application`, its admin
  editor :class:`AppEditor`, :class:`EditorElement`, :class:`PreviewOption`, its admin panel
  :class:`AdminPanel` and :data:`PanelMessage`, and
  :data:`CORE_SITE_EVENTS`), telephony
  (:class:`TelephonyBackend`, :class:`AttemptPlan`, :class:`AttemptOutcome`,
  :class:`LegStatus`, :class:`CallControl`, :func:`run_scenario`,
  :class:`SpeechEngine`), integrations (:class:`Integration`, :class:`CallEvent`,
  :class:`DeliveryError`, :class:`HttpPush` (whose requests reach only public addresses, else
  :class:`AddressNotAllowed`), :class:`Notifier`,
  :class:`Notification`), and, for any plugin with settings, :class:`CheckFailed`
  (what its optional ``check(settings)`` raises when the real service refuses them);
* the pages an app can show on, so the site script fetches its code only there (since 1.3) --
  :data:`PageGate`, :class:`UrlCondition`, :func:`hidden_where` (weighted show/hide rules) and
  :func:`shown_where_any` (alternatives of filters);
* building blocks of an app's settings schema (since 1.3) -- :class:`SettingsSchema`, :class:`Color`,
  :class:`WebUrl`, :func:`words`, :func:`day`, :func:`nested`, :func:`label`, :class:`UrlUtmCondition` (with
  :data:`RULE_OPERATORS`, :data:`RULE_TARGETS`), :data:`CHANNELS` and :class:`CallStateTexts`;
* settings helpers -- :class:`Settings` (the deployment's), :func:`check_time_zone`;
* input no store can hold -- :func:`storable` (a copy without NULs, broken characters or NaN, for
  input nobody can be asked to correct, such as a mailed form);
* clients' contacts for users who may not see them (docs/admin.md#who-may-do-what) --
  :func:`addresses_without_contacts` (which notification addresses must get them masked) and
  :func:`mask_text` (phones and e-mails in a text masked) (since 1.2);
* the stored objects a plugin may read -- :class:`Connection`, :class:`Lead`, :class:`Call`,
  :class:`Attempt`, :class:`Delivery`, :class:`User` (its ``preferences`` a plugin may extend under its own
  key), :class:`DisplayStatus`, :class:`GrantLevel`, ...; :func:`as_event_data` (a stored object as the plain
  dict integrations and notifications carry);
* who to tell about a connection -- :func:`users_with_access` (active users with at least a level on it,
  or the staff); the telephony backend's health as the workers last reported it --
  :func:`telephony_states`;
* who a notification's addresses are -- :func:`active_users_by_email` (address -> user id, for a
  notifier that reaches users elsewhere, e.g. a linked messenger chat), and a notifier's own panel
  on the user's profile, :attr:`Notifier.profile_panel`;
* users' phones for notifiers that reach people by phone -- :func:`phones_of_users`;
* plugins switched on per connection -- :class:`PluginKind` (application or integration),
  :func:`enable_plugin`, :func:`plugin_is_on`, :func:`plugin_settings`, :func:`store_plugin_settings`
  (``perezvon.core.enablement`` behind them: the one place that reads and writes them);
* translations -- :func:`gettext`, :data:`LOCALES`;
* test fixtures -- the pytest plugin ``perezvon`` (installed with Perezvon) gives
  the fixtures named in :data:`TEST_FIXTURES`, and :func:`registry_with` shows
  what one plugin registers, without a database.
"""

from __future__ import annotations

import typing as _typing

from perezvon.core.access import active_users_by_email, addresses_without_contacts, users_with_access
from perezvon.core.app_fields import (
    CHANNELS,
    RULE_OPERATORS,
    RULE_TARGETS,
    CallStateTexts,
    Color,
    SettingsSchema,
    UrlUtmCondition,
    WebUrl,
    day,
    label,
    nested,
    words,
)
from perezvon.core.batching import Batcher, settle
from perezvon.core.callbacks import as_event_data, telephony_states
from perezvon.core.commands import CommandContext, CommandRegistry
from perezvon.core.enablement import enable as enable_plugin
from perezvon.core.enablement import is_on as plugin_is_on
from perezvon.core.enablement import store_settings as store_plugin_settings
from perezvon.core.enablement import stored_settings as plugin_settings
from perezvon.core.i18n import DEFAULT_LOCALE, LOCALES, compiled_translations, gettext
from perezvon.core.inbound import InboundCall, MissedCallSource
from perezvon.core.intake import Accepted, IntakeError, IntakeReason, LeadIntake, RowInserter
from perezvon.core.integrations import HttpPush, excerpt, json_body
from perezvon.core.masking import mask_text
from perezvon.core.models import (
    Attempt,
    Call,
    Connection,
    Delivery,
    Department,
    DisplayStatus,
    GrantLevel,
    Lead,
    NotificationRecipient,
    Office,
    OperatorNumber,
    PluginKind,
    User,
)
from perezvon.core.outgoing import AddressNotAllowed
from perezvon.core.page_gates import PageGate, UrlCondition, hidden_where, shown_where_any
from perezvon.core.phones import DEFAULT_REGION, InvalidPhone
from perezvon.core.phones import normalise as normalise_phone
from perezvon.core.plugins import registry_with
from perezvon.core.recordings import keep_recording
from perezvon.core.registry import (
    ATTEMPT_FINISHED,
    CALL_FINISHED,
    CORE_SITE_EVENTS,
    EVENTS,
    LEAD_CREATED,
    AdminPanel,
    AppEditor,
    Application,
    AttemptOutcome,
    AttemptPlan,
    AttemptProgress,
    CallEvent,
    CheckFailed,
    CheckMessage,
    DeliveryError,
    DemoStep,
    Direction,
    EditorElement,
    Integration,
    JobRegistry,
    LeadRow,
    LeadSource,
    LegStatus,
    Notification,
    Notifier,
    PanelMessage,
    PluginError,
    PreviewOption,
    Registry,
    Server,
    ServerContext,
    SpeechEngine,
    TelephonyBackend,
)
from perezvon.core.scenario import CLIENT, OPERATOR, CallControl, LegHungUp
from perezvon.core.scenario import run as run_scenario
from perezvon.core.schemas import check_time_zone
from perezvon.core.settings import Settings
from perezvon.core.storable import storable
from perezvon.hookspecs.markers import PROJECT, hookimpl

if _typing.TYPE_CHECKING:
    from starlette.requests import Request


async def admin_may_view(request: Request, connection_id: int) -> bool:
    """Whether the request comes from a signed-in admin user with view access to the connection
    (for a plugin route serving what only the admin may see, e.g. a lead's attachments)."""
    from perezvon.web.admin.framework import may_view_connection  # not on import: the API stays light

    return await may_view_connection(request, connection_id)


async def admin_signed_in(request: Request) -> tuple[User, str] | None:
    """The signed-in admin user and the session's CSRF token (a form of the plugin's own posts it back
    as ``csrf_token``), or None when nobody is signed in (for a plugin page of a user's own choices)."""
    from perezvon.web.admin.framework import signed_in  # not on import: the API stays light

    return await signed_in(request)


async def phones_of_users(emails: _typing.Iterable[str]) -> dict[str, str]:
    """The phone on record (E.164, the number the user signs in with) of each active user whose
    e-mail is one of ``emails``, by that e-mail as given (matched without regard to case): for a
    notifier that reaches people by phone (docs/sms.md). An address no user has is left out."""
    from tortoise.expressions import Q

    from perezvon.core.models import User

    wanted = {email.strip().lower(): email for email in emails if email and email.strip()}
    if not wanted:
        return {}
    found: dict[str, str] = {}
    matches = Q(*(Q(email__iexact=email) for email in wanted), join_type="OR")
    for email, phone in await User.filter(matches, is_active=True).values_list("email", "phone"):
        given = wanted.get(str(email).strip().lower())
        if given is not None and phone:
            found[given] = str(phone)
    return found


#: the version of this surface, ``MAJOR.MINOR`` (see the module's docstring)
PLUGIN_API_VERSION = "1.5"

#: the fixtures the ``perezvon`` pytest plugin gives a plugin's own tests
TEST_FIXTURES = ("perezvon_app", "perezvon_client", "perezvon_site", "perezvon_run_jobs")

__all__ = [
    "ATTEMPT_FINISHED",
    "CALL_FINISHED",
    "CHANNELS",
    "CLIENT",
    "CORE_SITE_EVENTS",
    "DEFAULT_LOCALE",
    "DEFAULT_REGION",
    "EVENTS",
    "LEAD_CREATED",
    "LOCALES",
    "OPERATOR",
    "PLUGIN_API_VERSION",
    "PROJECT",
    "RULE_OPERATORS",
    "RULE_TARGETS",
    "TEST_FIXTURES",
    "Accepted",
    "AddressNotAllowed",
    "AdminPanel",
    "AppEditor",
    "Application",
    "Attempt",
    "AttemptOutcome",
    "AttemptPlan",
    "AttemptProgress",
    "Batcher",
    "Call",
    "CallControl",
    "CallEvent",
    "CallStateTexts",
    "CheckFailed",
    "CheckMessage",
    "Color",
    "CommandContext",
    "CommandRegistry",
    "Connection",
    "Delivery",
    "DeliveryError",
    "DemoStep",
    "Department",
    "Direction",
    "DisplayStatus",
    "EditorElement",
    "GrantLevel",
    "HttpPush",
    "InboundCall",
    "IntakeError",
    "IntakeReason",
    "Integration",
    "InvalidPhone",
    "JobRegistry",
    "Lead",
    "LeadIntake",
    "LeadRow",
    "LeadSource",
    "LegHungUp",
    "LegStatus",
    "MissedCallSource",
    "Notification",
    "NotificationRecipient",
    "Notifier",
    "Office",
    "OperatorNumber",
    "PageGate",
    "PanelMessage",
    "PluginError",
    "PluginKind",
    "PreviewOption",
    "Registry",
    "RowInserter",
    "Server",
    "ServerContext",
    "Settings",
    "SettingsSchema",
    "SpeechEngine",
    "TelephonyBackend",
    "UrlCondition",
    "UrlUtmCondition",
    "User",
    "WebUrl",
    "active_users_by_email",
    "addresses_without_contacts",
    "admin_may_view",
    "admin_signed_in",
    "as_event_data",
    "check_time_zone",
    "compiled_translations",
    "day",
    "enable_plugin",
    "excerpt",
    "gettext",
    "hidden_where",
    "hookimpl",
    "json_body",
    "keep_recording",
    "label",
    "mask_text",
    "nested",
    "normalise_phone",
    "phones_of_users",
    "plugin_is_on",
    "plugin_settings",
    "registry_with",
    "run_scenario",
    "settle",
    "shown_where_any",
    "storable",
    "store_plugin_settings",
    "telephony_states",
    "users_with_access",
    "words",
]
