"""The objects plugins register, and the registry that holds them.

Pluggy discovers plugins and calls their registration hooks; everything that
does work at run time is one of the async objects below. The core talks to
them only through these base classes, never to a concrete plugin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from marshmallow import Schema

from perezvon.core.page_gates import PageGate

if TYPE_CHECKING:
    from perezvon.core.inbound import InboundCalls, MissedCallSource
    from perezvon.core.intake import LeadIntake
    from perezvon.core.models import Connection, Lead


class PluginError(Exception):
    """A plugin cannot be loaded or configured. The message names the plugin."""


#: a message of :class:`CheckFailed`: an English msgid, or ``(msgid, params)`` for one with
#: ``%(name)s`` placeholders (e.g. the service's own words)
CheckMessage = str | tuple[str, dict[str, Any]]


class CheckFailed(Exception):
    """The real service refused a plugin's settings for a connection (raised by ``check``).

    ``errors`` maps a settings field to its messages, like a marshmallow errors
    dict; :data:`NOT_A_FIELD` (``"_schema"``) holds what is about no one field.
    Messages are English msgids (:data:`CheckMessage`): the admin shows them
    translated -- from ``locales/`` next to the plugin's module, else the core's
    catalog -- with every secret setting blanked out
    (:func:`perezvon.core.checks.check_settings`).
    """

    NOT_A_FIELD = "_schema"

    def __init__(self, errors: dict[str, list[CheckMessage]]) -> None:
        super().__init__(f"the service refused: {', '.join(sorted(errors))}")  # field names only: never a secret
        self.errors = errors


# --- lead sources -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LeadSource:
    """Where a lead came from (the ``source`` of every lead)."""

    key: str
    title: str
    #: Calltouch DTMF auto-tag (docs/calls.md#lead-source-codes: widget 11 ... other 16)
    calltouch_code: int = 16
    #: False for a source whose visitor never saw the connection's office and department choice
    #: (a site's own form e-mailed to Perezvon): the intake does not hold its leads to "required"
    #: choices, it takes them with the choice empty, so no such lead is lost over a choice
    visitor_chooses: bool = True
    #: what this source's leads must carry in ``extra`` (docs/plugins.md, "Lead sources"): the
    #: intake loads ``extra`` through it and refuses a lead it rejects with 422, errors under
    #: ``extra``; keys it does not declare pass as sent (an integration may add its own)
    extra_schema: type[Schema] | None = None


class Server:
    """A long-running server a lead-source plugin runs next to the web app."""

    name: str = "server"

    async def start(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the start-up banner, e.g. ``echo on 127.0.0.1:7000``."""
        return self.name


@dataclasses.dataclass
class ServerContext:
    intake: LeadIntake
    host: str
    ports: dict[str, int]


#: an ``async def step(connection) -> dict`` a plugin adds to ``perezvon demo``
DemoStep = Callable[["Connection"], Awaitable[dict[str, Any]]]


# --- applications -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EditorElement:
    """One element of an app's preview that the admin picks by clicking it."""

    #: the element's name, e.g. ``"title"``; the app's editor script maps it to settings
    name: str
    #: a CSS selector inside the app's shadow root, e.g. ``"h2"`` or ``".lnk, .tl"``;
    #: elements are tried in their declared order, the first match wins
    selector: str
    #: what the admin calls it: an English msgid, translated through the plugin's catalog
    label: str
    #: the settings fields it edits, as the app's editor script reads them
    fields: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PreviewOption:
    """A switch above the preview (format, trigger, screen ...), a ``<select id="pv-<name>">``."""

    name: str
    label: str
    #: ``(value, label)`` pairs, labels as English msgids; empty: the editor script fills it
    choices: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class AppEditor:
    """An app's visual editor in the admin (docs/admin.md, "The visual editor").

    The core gives the page, the form, the inputs built from the settings schema, the
    sandboxed preview frame running the real site script and the save; the plugin
    gives what knows its markup: the files below, in its own ``static/`` folder.
    """

    #: scripts loaded in the editor page after the core's editor shell (they call
    #: ``PerezvonEditor.define(key, {...})``)
    scripts: tuple[str, ...] = ()
    #: scripts loaded in the preview frame (they call ``PerezvonPreview.define(key, {...})``)
    preview_scripts: tuple[str, ...] = ()
    stylesheets: tuple[str, ...] = ()
    elements: tuple[EditorElement, ...] = ()
    options: tuple[PreviewOption, ...] = ()
    #: further texts the editor script shows, by name: English msgids
    texts: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class AdminPanel:
    """An app's own panel on a connection's admin page (docs/plugins.md, "Admin panels").

    The core renders ``template`` (a file in the plugin's ``templates/`` folder) with what the
    app's :meth:`Application.admin_panel_data` returns, and runs
    :meth:`Application.admin_panel_action` for a button of the panel whose name is in ``actions``.
    """

    #: the template, relative to the plugin's ``templates/`` folder (the core adds the plugin's name)
    template: str
    #: the names of the panel's buttons (``<button name="action" value="...">``), posted to the
    #: app's settings page with the edit level
    actions: tuple[str, ...] = ()
    #: the keys of the panel's data whose texts may hold clients' phones or e-mails (a form's sender,
    #: its subject): the core masks them for a user who may not see the connection's clients'
    #: contacts (docs/admin.md#who-may-do-what)
    contact_keys: tuple[str, ...] = ()


#: what a panel's action tells the admin: ``(kind, text)``, kind ``"ok"`` or ``"error"``, the text
#: already in the admin's language
PanelMessage = tuple[str, str]


#: events the site runtime itself emits for any app (docs/site-script.md): name -> label
CORE_SITE_EVENTS: dict[str, str] = {"offhours_lead": "Off-hours lead"}


class Application:
    """A site application (widget, lead generator, ...), enabled per connection."""

    key: ClassVar[str]
    title: ClassVar[str]
    #: what it does, shown on its settings page; ``summary``: one short line for its card on the
    #: connection page (the description when empty). English message ids, Russian in the plugin's catalog
    description: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    lead_source: ClassVar[str]
    settings_schema: ClassVar[type[Schema]]
    client_script: ClassVar[Path | None] = None
    #: the admin's visual editor of this app; None: the form generated from the schema
    editor: ClassVar[AppEditor | None] = None
    #: the events its client script emits on the site's bus (``ctx.emit("shown")`` is
    #: ``"<key>_shown"``, ``ctx.submit`` emits ``"<key>_lead"``): event -> label, an English
    #: msgid. Analytics integrations turn each one into a goal (docs/integrations.md).
    site_events: ClassVar[dict[str, str]] = {}
    #: the app's own panel on a connection's admin page; None: only the card
    admin_panel: ClassVar[AdminPanel | None] = None
    #: the widest viewport (CSS px) the app can show on, e.g. 768 for an app made for phones: on wider
    #: screens the site script neither fetches nor starts its code (docs/site-script.md#for-app-authors)
    max_viewport_px: ClassVar[int | None] = None

    async def admin_panel_data(self, connection: Connection, locale: str) -> dict[str, Any]:
        """What the panel's template gets as ``panel.data`` for this connection, in ``locale``."""
        return {}

    async def admin_panel_action(
        self, connection: Connection, action: str, form: dict[str, str], locale: str
    ) -> list[PanelMessage]:
        """Run one of ``admin_panel.actions`` for a connection; returns what to tell the admin."""
        return []

    def default_settings(self) -> dict[str, Any]:
        defaults: dict[str, Any] = self.settings_schema().load({})
        return defaults

    def client_config(self, connection: Connection, settings: dict[str, Any]) -> dict[str, Any]:
        """The per-connection JSON the app's client code receives."""
        return settings

    async def check(self, settings: dict[str, Any]) -> None:
        """Ask the app's own service, if it has one, whether it accepts these settings
        (as :meth:`Integration.check` does). The default checks nothing."""
        return None

    def page_gate(self, settings: dict[str, Any]) -> PageGate:
        """The pages this app can show on with these settings, as far as the page address tells
        (docs/site-script.md#pages-an-app-may-show-on): elsewhere the site script does not fetch
        its code. ``None`` (the default): any page; ``[]``: none, the app is left out."""
        return None

    def lead_rows(self, lead: Lead, locale: str) -> list[LeadRow]:
        """What the admin's call page shows of one of this app's leads, under the app's title
        (docs/plugins.md, "Applications"): labels in ``locale``. The default shows nothing."""
        return []

    def spoken_details(self, lead: Lead) -> str:
        """This lead's details as Russian text spoken to the operator after the client's name
        (docs/calls.md#announcements); the core cleans and shortens it. The default says nothing."""
        return ""


@dataclasses.dataclass(frozen=True)
class LeadRow:
    """One line of an app's lead data on the admin's call page: a label, a value, and pictures
    (``(url, alt)``: served by the app's own route, which must check the viewer's access)."""

    label: str
    value: str = ""
    images: tuple[tuple[str, str], ...] = ()


# --- telephony ---------------------------------------------------------------


class Direction:
    OPERATOR_FIRST = "operator_first"
    CLIENT_FIRST = "client_first"
    ALL = (OPERATOR_FIRST, CLIENT_FIRST)


class RecordedNotice:
    """Who hears "the conversation is recorded" before the bridge (docs/calls.md#announcements-and-waiting)."""

    NOBODY = "nobody"
    OPERATOR = "operator"
    CLIENT = "client"
    BOTH = "both"
    ALL = (NOBODY, OPERATOR, CLIENT, BOTH)


class LegStatus:
    """SIP final codes used for legs, plus the internal codes 201-204 (docs/calls.md#leg-statuses)."""

    OK = 200
    CANCELLED_BY_DTMF = 201
    OPERATOR_NO_KEY = 202
    VOICEMAIL = 203
    PARTY_LEFT = 204
    NOT_FOUND = 404
    TIMEOUT = 408
    UNAVAILABLE = 480
    TERMINATED = 487
    BUSY = 486
    SERVER_ERROR = 500
    UNAVAILABLE_SERVICE = 503
    DECLINED = 603


@dataclasses.dataclass(frozen=True)
class AttemptPlan:
    """Everything a backend needs to place one attempt; nothing it must look up.

    Backends that implement :class:`perezvon.core.scenario.CallControl` pass the plan
    to :func:`perezvon.core.scenario.run`, which plays the callback scenario with it.
    """

    call_id: str
    attempt_number: int
    direction: str
    operator_number: str
    operator_extension: str
    client_number: str
    #: caller ids chosen by the substitution rules ("" = the platform's own number)
    caller_id_to_operator: str = ""
    caller_id_to_client: str = ""
    #: what the robot says (docs/calls.md#announcements), already in speakable Russian
    operator_text: str = ""
    client_text: str = ""
    #: the connection's telephony settings (docs/calls.md#telephony-settings),
    #: loaded by perezvon.core.schemas.TelephonySettingsSchema
    telephony: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: DTMF sent on the operator leg once it answered, after the extension: the call-tracking
    #: tag of the lead's app (:meth:`Integration.operator_dtmf`; Calltouch's 11 ... 16), "" for none
    operator_dtmf_tag: str = ""
    #: "the conversation is recorded", said right before the bridge to the legs the telephony
    #: setting ``recorded_notice`` names (docs/calls.md#announcements-and-waiting); "" for nobody
    recorded_notice: str = ""
    #: ring-all (docs/calls.md#operator-lines): ``(phone, extension)`` of every operator line rung at
    #: once, the first being ``operator_number``; the first to answer takes the call. Empty: one line
    ring_all: tuple[tuple[str, str], ...] = ()

    @property
    def voice(self) -> str:
        return str(self.telephony.get("voice", "female"))


@dataclasses.dataclass
class AttemptOutcome:
    """How one attempt ended: the status pair (docs/calls.md#leg-statuses) and the talk time."""

    operator_status: int | None
    client_status: int | None
    conversation_seconds: int = 0
    recording: Path | None = None
    #: a free-text note from the backend (e.g. "AMI link lost"), for the log
    note: str = ""
    #: ring-all: the operator number that answered ("" : ``AttemptPlan.operator_number``)
    operator_number: str = ""


class AttemptProgress:
    """Callbacks a backend makes while an attempt runs (the core stores them)."""

    async def leg_dialled(self, leg: str) -> None:  # pragma: no cover - interface
        """Called when the backend starts dialling ``"operator"`` or ``"client"``."""

    async def operator_answered(self, number: str) -> None:
        """Ring-all: ``number`` answered and the other operator lines were cancelled."""


class TelephonyBackend:
    key: ClassVar[str]
    title: ClassVar[str]
    #: where the backend reports the inbound calls its PBX tells it of (docs/calls.md#the-client-called-in);
    #: set by the core before :meth:`start`, None when nothing listens (a backend used alone)
    inbound: InboundCalls | None = None
    #: the backend's CallControl can ring several operator numbers at once (``dial_all``); a backend
    #: that cannot rings one after another instead (docs/calls.md#operator-lines)
    rings_all: ClassVar[bool] = False

    async def start(self) -> None:
        """Connect (log in to the PBX, ...). Called once in the worker."""

    async def stop(self) -> None:
        """Disconnect; called on worker shutdown."""

    async def health(self) -> str | None:
        """``None`` when healthy, else a short reason shown in ``/healthz``."""
        return None

    def servers(self) -> list[dict[str, Any]]:
        """Each server (PBX) the backend dials through and its state, shown in ``/healthz``;
        a backend of one server, or of none, keeps this default."""
        return []

    async def place_attempt(self, plan: AttemptPlan, progress: AttemptProgress) -> AttemptOutcome:
        raise NotImplementedError  # pragma: no cover - interface

    async def end_interrupted(self, call_id: str, attempt_number: int) -> int:
        """End what the PBX still holds for an attempt whose worker stopped mid-call.

        The sweep calls this, in another worker, when it resolves such an attempt as
        interrupted, before the call is redialled. Return how many of its channels
        were found (each is gone afterwards).
        A backend whose calls cannot outlive their worker keeps this default.
        """
        return 0


class SpeechEngine:
    key: ClassVar[str]
    title: ClassVar[str]
    priority: ClassVar[int] = 0

    async def synthesize(self, text: str, voice: str) -> Path:
        raise NotImplementedError  # pragma: no cover - interface


# --- integrations --------------------------------------------------------------


class DeliveryError(Exception):
    """An integration push failed. ``retry`` says whether trying again can help.

    ``status`` is the service's HTTP status (None when no answer came);
    ``timed_out`` says that no answer came in time.
    """

    def __init__(
        self, message: str, *, retry: bool, status: int | None = None, response: str = "", timed_out: bool = False
    ):
        super().__init__(message)
        self.retry = retry
        self.status = status
        self.response = response
        self.timed_out = timed_out


#: the server-side events an integration can handle, in the order they happen
LEAD_CREATED = "lead_created"
ATTEMPT_FINISHED = "attempt_finished"
CALL_FINISHED = "call_finished"
EVENTS = (LEAD_CREATED, ATTEMPT_FINISHED, CALL_FINISHED)


@dataclasses.dataclass(frozen=True)
class CallEvent:
    """What an integration handler receives: plain data, no ORM objects."""

    event: str  # "lead_created" | "attempt_finished" | "call_finished"
    connection_id: int
    #: this connection's settings of the integration; never in a repr, since they hold keys
    settings: dict[str, Any] = dataclasses.field(repr=False)
    lead: dict[str, Any]
    call: dict[str, Any]
    attempts: list[dict[str, Any]]
    #: the attempt an ``attempt_finished`` event is about (None for the other events)
    attempt: dict[str, Any] | None = None
    #: the same for every try of one delivery: receivers use it to drop duplicates
    event_id: str = ""
    #: what this integration's earlier successful deliveries of this call returned, by
    #: event ("attempt_finished:2" for attempts), e.g. the id a service gave the lead
    previous: dict[str, str] = dataclasses.field(default_factory=dict)


class Integration:
    key: ClassVar[str]
    title: ClassVar[str]
    settings_schema: ClassVar[type[Schema]]
    #: what to set up in the external service, shown on the settings page; ``summary``: one short line
    #: for its card on the connection page (the description when empty). English message ids, Russian in
    #: the plugin's own catalog (``locales/ru``)
    description: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: JavaScript the site script loads when the integration is on for a connection; it
    #: subscribes with ``window.Perezvon.on(event, handler)`` (docs/site-script.md)
    client_script: ClassVar[Path | None] = None

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Client-side goals the site script reaches for this connection."""
        return {}

    async def check(self, settings: dict[str, Any]) -> None:
        """Ask the real service whether it accepts these per-connection settings.

        ``settings`` are already validated by :attr:`settings_schema` (secrets
        included). Talk to the service with a short timeout and raise
        :class:`CheckFailed` with the fields it refused; return ``None`` when it
        accepts them or when there is nothing to ask it. Network errors and
        :class:`DeliveryError` may simply propagate:
        :func:`perezvon.core.checks.check_settings`, which runs this for the
        admin, bounds its time and turns every failure into a message.
        The default checks nothing.
        """
        return None

    def operator_dtmf(self, lead_source: str) -> str:
        """DTMF digits the engine sends on the operator leg of each attempt for a lead from
        ``lead_source`` (the lead source's key), once the leg answered and after its extension:
        a call-tracking service the operator number runs through tags the call by them
        (Calltouch's auto-tags per app, docs/calls.md#lead-source-codes). Digits 0-9, ``*``,
        ``#`` only; "" sends nothing, the default."""
        return ""

    async def on_lead_created(self, event: CallEvent) -> str | None:
        """Push a new lead; return a short response excerpt to store."""
        return None

    async def on_attempt_finished(self, event: CallEvent) -> str | None:
        """Push the end of one dial attempt (``event.attempt``); return a short excerpt."""
        return None

    async def on_call_finished(self, event: CallEvent) -> str | None:
        """Push a call's final result; return a short response excerpt to store."""
        return None

    def handler(self, event: str) -> Callable[[CallEvent], Awaitable[str | None]]:
        handler: Callable[[CallEvent], Awaitable[str | None]] = getattr(self, f"on_{event}")
        return handler

    @classmethod
    def handles(cls, event: str) -> bool:
        """Whether the class overrides ``on_<event>``: only then is a job queued for it."""
        name = f"on_{event}"
        return getattr(cls, name, None) is not getattr(Integration, name)


@dataclasses.dataclass(frozen=True)
class Notification:
    kind: str
    recipients: tuple[str, ...]
    subject_id: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))


class Notifier:
    key: ClassVar[str]
    #: the notifier's own panel on each user's admin profile (e.g. linking a messenger chat);
    #: None: none. The same :class:`AdminPanel` as an app's, its buttons posted to ``/profile``
    profile_panel: ClassVar[AdminPanel | None] = None

    async def send(self, notification: Notification) -> None:
        raise NotImplementedError  # pragma: no cover - interface

    def wants_new_leads(self) -> bool:
        """Whether it also gets ``lead_created`` for every new lead that is going to be called (a chat
        notifier's "new lead" message); the e-mail does not: it is told only of call results."""
        return False

    async def profile_panel_data(self, user_id: int, locale: str) -> dict[str, Any]:
        """What the profile panel's template gets as ``panel.data`` for this user, in ``locale``."""
        return {}

    async def profile_panel_action(
        self, user_id: int, action: str, form: dict[str, Any], locale: str
    ) -> list[PanelMessage]:
        """Runs one of ``profile_panel.actions`` for the signed-in user; what to tell them."""
        return []


# --- jobs ---------------------------------------------------------------------------


class JobRegistry:
    """Collects one plugin's arq jobs under ``"<plugin>.<name>"``."""

    def __init__(self, plugin: str, jobs: dict[str, Any], periodic: dict[str, int] | None = None) -> None:
        self.plugin = plugin
        self.jobs = jobs
        #: full job name -> every how many minutes the worker runs it on its own (``every_minutes``)
        self.periodic: dict[str, int] = periodic if periodic is not None else {}

    def add(self, name: str, function: Any, *, every_minutes: int | None = None) -> str:
        """Register ``async def function(ctx)`` as ``"<plugin>.<name>"``; with ``every_minutes`` the
        worker also runs it on its own every so many minutes (a divisor of 60, from 1 to 60), once
        across all workers at a time (an arq cron job, ``unique``)."""
        full = f"{self.plugin}.{name}"
        if full in self.jobs:
            raise PluginError(f"plugin {self.plugin!r}: job {full!r} is registered twice")
        if every_minutes is not None:
            if not isinstance(every_minutes, int) or not 1 <= every_minutes <= 60 or 60 % every_minutes:
                raise PluginError(
                    f"plugin {self.plugin!r}: job {full!r}: every_minutes must divide 60 (1 .. 60), not {every_minutes!r}"
                )
            self.periodic[full] = every_minutes
        self.jobs[full] = function
        return full


# --- the registry ----------------------------------------------------------------


class Registry:
    """What the enabled plugins registered, keyed and checked for duplicates.

    The plugin host sets :attr:`current_plugin` before it calls each plugin's
    registration hooks, so every entry knows which plugin it came from.
    """

    def __init__(self) -> None:
        self.current_plugin: str = "?"
        self.lead_sources: dict[str, LeadSource] = {}
        self.applications: dict[str, Application] = {}
        self.telephony: dict[str, TelephonyBackend] = {}
        self.speech: dict[str, SpeechEngine] = {}
        self.integrations: dict[str, Integration] = {}
        self.notifiers: dict[str, Notifier] = {}
        self.missed_call_sources: dict[str, MissedCallSource] = {}
        self.owner: dict[tuple[str, str], str] = {}

    def _add(self, kind: str, table: dict[str, Any], key: str, obj: Any) -> None:
        if not key or not isinstance(key, str):
            raise PluginError(f"plugin {self.current_plugin!r}: a {kind} needs a string key")
        if key in table:
            raise PluginError(
                f"plugin {self.current_plugin!r}: {kind} {key!r} is already registered "
                f"by plugin {self.owner[(kind, key)]!r}"
            )
        table[key] = obj
        self.owner[(kind, key)] = self.current_plugin

    def add_lead_source(self, source: LeadSource) -> None:
        self._add("lead source", self.lead_sources, source.key, source)

    def add_application(self, app: Application) -> None:
        for event in app.site_events:
            if not (isinstance(event, str) and event.startswith(f"{app.key}_") and event.isidentifier()):
                raise PluginError(
                    f"plugin {self.current_plugin!r}: application {app.key!r} declares the site event "
                    f"{event!r}; its events are named '{app.key}_<what>' (letters, digits, _)"
                )
        self._add("application", self.applications, app.key, app)

    def site_events(self, app_keys: Iterable[str] | None = None) -> dict[str, str]:
        """The site events of the given apps (all registered ones by default) and the
        runtime's own: event -> label msgid, the runtime's first, then app by app."""
        keys = self.applications if app_keys is None else app_keys
        events = dict(CORE_SITE_EVENTS)
        for key in keys:
            app = self.applications.get(key)
            if app is not None:
                events.update(app.site_events)
        return events

    def add_telephony(self, backend: TelephonyBackend) -> None:
        self._add("telephony backend", self.telephony, backend.key, backend)

    def add_speech(self, engine: SpeechEngine) -> None:
        self._add("speech engine", self.speech, engine.key, engine)

    def add_integration(self, integration: Integration) -> None:
        self._add("integration", self.integrations, integration.key, integration)

    def add_notifier(self, notifier: Notifier) -> None:
        self._add("notifier", self.notifiers, notifier.key, notifier)

    def add_missed_call_source(self, source: MissedCallSource) -> None:
        """A lead source fed by the PBX's missed inbound calls (docs/calls.md#the-client-called-in)."""
        self._add("missed-call source", self.missed_call_sources, source.key, source)

    def kinds_of(self, plugin: str) -> list[str]:
        return sorted({kind for (kind, _), owner in self.owner.items() if owner == plugin})
