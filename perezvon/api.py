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
  :class:`IntakeError`, :class:`IntakeReason`), applications (:class:`Application`, its admin
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
* settings helpers -- :class:`Settings` (the deployment's), :func:`check_time_zone`;
* input no store can hold -- :func:`storable` (a copy without NULs, broken characters or NaN, for
  input nobody can be asked to correct, such as a mailed form);
* the stored objects a plugin may read -- :class:`Connection`, :class:`Lead`, ...;
* plugins switched on per connection -- :class:`PluginKind` (application or integration),
  :func:`enable_plugin`, :func:`plugin_is_on`, :func:`plugin_settings`, :func:`store_plugin_settings`
  (``perezvon.core.enablement`` behind them: the one place that reads and writes them);
* translations -- :func:`gettext`, :data:`LOCALES`;
* test fixtures -- the pytest plugin ``perezvon`` (installed with Perezvon) gives
  the fixtures named in :data:`TEST_FIXTURES`, and :func:`registry_with` shows
  what one plugin registers, without a database.
"""

from __future__ import annotations

from perezvon.core.batching import Batcher, settle
from perezvon.core.commands import CommandContext, CommandRegistry
from perezvon.core.enablement import enable as enable_plugin
from perezvon.core.enablement import is_on as plugin_is_on
from perezvon.core.enablement import store_settings as store_plugin_settings
from perezvon.core.enablement import stored_settings as plugin_settings
from perezvon.core.i18n import DEFAULT_LOCALE, LOCALES, compiled_translations, gettext
from perezvon.core.intake import Accepted, IntakeError, IntakeReason, LeadIntake, RowInserter
from perezvon.core.integrations import HttpPush, excerpt, json_body
from perezvon.core.models import (
    Connection,
    Department,
    Lead,
    NotificationRecipient,
    Office,
    OperatorNumber,
    PluginKind,
)
from perezvon.core.outgoing import AddressNotAllowed
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

#: the version of this surface, ``MAJOR.MINOR`` (see the module's docstring)
PLUGIN_API_VERSION = "1.1"

#: the fixtures the ``perezvon`` pytest plugin gives a plugin's own tests
TEST_FIXTURES = ("perezvon_app", "perezvon_client", "perezvon_site", "perezvon_run_jobs")

__all__ = [
    "ATTEMPT_FINISHED",
    "CALL_FINISHED",
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
    "TEST_FIXTURES",
    "Accepted",
    "AddressNotAllowed",
    "AdminPanel",
    "AppEditor",
    "Application",
    "AttemptOutcome",
    "AttemptPlan",
    "AttemptProgress",
    "Batcher",
    "CallControl",
    "CallEvent",
    "CheckFailed",
    "CheckMessage",
    "CommandContext",
    "CommandRegistry",
    "Connection",
    "DeliveryError",
    "DemoStep",
    "Department",
    "Direction",
    "EditorElement",
    "HttpPush",
    "IntakeError",
    "IntakeReason",
    "Integration",
    "InvalidPhone",
    "JobRegistry",
    "Lead",
    "LeadIntake",
    "LeadSource",
    "LegHungUp",
    "LegStatus",
    "Notification",
    "NotificationRecipient",
    "Notifier",
    "Office",
    "OperatorNumber",
    "PanelMessage",
    "PluginError",
    "PluginKind",
    "PreviewOption",
    "Registry",
    "RowInserter",
    "Server",
    "ServerContext",
    "Settings",
    "SpeechEngine",
    "TelephonyBackend",
    "check_time_zone",
    "compiled_translations",
    "enable_plugin",
    "excerpt",
    "gettext",
    "hookimpl",
    "json_body",
    "keep_recording",
    "normalise_phone",
    "plugin_is_on",
    "plugin_settings",
    "registry_with",
    "run_scenario",
    "settle",
    "storable",
    "store_plugin_settings",
]
