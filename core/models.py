"""The data model (tortoise-orm; SQLite by default, PostgreSQL at scale).

Leads, calls and attempts have UUID keys made by the application, so the
intake can write a whole batch in one transaction without reading ids back,
and a call id in a public URL cannot be guessed.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from typing import Any

from tortoise import fields
from tortoise.models import Model

log = logging.getLogger("perezvon.models")


def readable_when_out_of_range(field: fields.DatetimeField[Any]) -> fields.DatetimeField[Any]:
    """``field``, reading as None a stored time that cannot be converted (docs/calls.md#what-the-stores-can-hold).

    Before the intake checked the range of ``preferred_at``, SQLite stored year 1 at +14:00 as it
    came; converting it to UTC overflows, and every read of its lead failed -- its call was never
    dialled, and the read API, the admin and the export failed for every page holding it. Such a
    time was never honoured anyway; read as None, the lead is shown and called without it. Only
    reading changes (the field stays a plain DatetimeField: no migration, no table rebuilt).
    """
    plain = field.to_python_value

    def to_python_value(value: Any) -> dt.datetime | None:
        try:
            return plain(value)
        except (OverflowError, ValueError) as exc:
            log.warning("a stored time cannot be read (%r: %s); taken as empty", value, exc)
            return None

    setattr(field, "to_python_value", to_python_value)  # noqa: B010 -- an instance attribute over the method
    return field


def stored_columns(instance: Model) -> list[tuple[str, fields.Field[Any], Any]]:
    """``(column, field, value)`` of a new row, each value as Tortoise itself would store it
    (defaults and ``auto_now_add`` filled in), a key the database generates left out: for the
    few writes made by hand in one trip to the database (``core/claims.py``, ``core/sqlite.py``)."""
    meta = instance._meta
    row = []
    for name, column in meta.fields_db_projection.items():
        if column in meta.generated_db_fields:
            continue
        field = meta.fields_map[name]
        row.append((column, field, field.to_db_value(getattr(instance, name), instance)))
    return row


def new_site_token() -> str:
    """An unguessable site token (192 bits) for the site script and lead API."""
    return secrets.token_urlsafe(24)


class GrantLevel:
    VIEW = "view"
    EDIT = "edit"
    FULL = "full"
    ORDER = (VIEW, EDIT, FULL)


class Channel:
    """Traffic channels of a lead (docs/site-script.md)."""

    DIRECT = "direct"
    ORGANIC = "organic"
    ADS = "ads"
    REFERRAL = "referral"
    SOCIAL = "social"
    ALL = (DIRECT, ORGANIC, ADS, REFERRAL, SOCIAL)


#: how much of a reason a call and an attempt keep (a telephony error can say more)
REASON_LENGTH = 300


class CallState:
    """Where a call is in its life; the display status says how it went."""

    SCHEDULED = "scheduled"  # next attempt waits for next_attempt_at
    DIALLING = "dialling"  # an attempt is in progress
    NOTIFIED = "notified"  # webhook delay over 59 s: an e-mail instead of a call (docs/calls.md#the-59-s-rule)
    FINISHED = "finished"
    ACTIVE = (SCHEDULED, DIALLING)


class DisplayStatus:
    """The statuses the Calls table shows (docs/calls.md#display-statuses)."""

    PENDING = "pending"
    SUCCESSFUL = "successful"
    LOST = "lost"
    UNSUCCESSFUL = "unsuccessful"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: the site's delay before a call is over 59 s: people were e-mailed, nobody was called
    #: (docs/calls.md#the-59-s-rule)
    NOTIFIED = "notified"


class User(Model):
    id = fields.IntField(primary_key=True)
    phone = fields.CharField(max_length=20, unique=True, description="login, E.164")
    email = fields.CharField(max_length=254, null=True)
    first_name = fields.CharField(max_length=100, default="")
    last_name = fields.CharField(max_length=100, default="")
    position = fields.CharField(max_length=100, default="")
    password_hash = fields.CharField(
        max_length=255, null=True, description="argon2 hash, empty until the user is activated"
    )
    is_staff = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    preferences: fields.JSONField[dict[str, Any]] = fields.JSONField(
        default=dict,
        db_default="{}",  # the users already there get it too (migration 0008)
        description="the user's choices in the admin, e.g. the Calls table's columns",
    )

    class Meta:
        table = "users"

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.phone}>".strip()


class ActivationToken(Model):
    """A one-time link to set a password. Only its hash is stored."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="activation_tokens", on_delete=fields.CASCADE
    )
    user_id: int
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "activation_tokens"


class Project(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    legal_entity = fields.CharField(max_length=300, default="")
    payment_type = fields.CharField(max_length=10, default="prepaid", description="prepaid | postpaid")
    industry = fields.CharField(max_length=200, default="")
    line_of_business = fields.CharField(max_length=200, default="")
    city = fields.CharField(max_length=100, default="")
    manager_name = fields.CharField(max_length=200, default="")
    manager_phone = fields.CharField(max_length=20, default="")
    manager_email = fields.CharField(max_length=254, default="")
    # recording storage (docs/recordings.md): the quota, what happens at it, and the use last measured
    recording_quota_gb = fields.FloatField(null=True, description="null: no quota")
    recording_policy = fields.CharField(
        max_length=13, default="delete_oldest", db_default="delete_oldest", description="delete_oldest | keep"
    )
    recording_bytes = fields.BigIntField(
        default=0, db_default=0, description="the recordings of the project, as last measured"
    )
    recordings_over_quota_since = fields.DatetimeField(null=True, description="kept past the quota since")
    recording_quota_told: fields.JSONField[list[str]] = fields.JSONField(
        default=list,
        db_default="[]",
        description="the notifiers that have told the full-access users of this episode",
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "projects"


def default_schedule() -> dict[str, Any]:
    """Mon-Sun 09:00-20:00 (docs/calls.md#connection-settings); keys are ISO weekdays 1..7, null = day off."""
    return {str(day): ["09:00", "20:00"] for day in range(1, 8)}


class Connection(Model):
    """One site (one domain) of a project, with its settings."""

    id = fields.IntField(primary_key=True)
    project: fields.ForeignKeyRelation[Project] = fields.ForeignKeyField(
        "perezvon.Project", related_name="connections", on_delete=fields.CASCADE
    )
    project_id: int
    kind = fields.CharField(max_length=20, default="site")
    domain = fields.CharField(max_length=253, unique=True)
    extra_domains: fields.JSONField[list[str]] = fields.JSONField(default=list)
    name = fields.CharField(max_length=200, default="")
    specialization = fields.CharField(max_length=200, default="")
    timezone = fields.CharField(max_length=64, default="Europe/Moscow")
    is_on = fields.BooleanField(default=True)
    token = fields.CharField(max_length=64, unique=True, default=new_site_token)
    # general settings (docs/calls.md#connection-settings)
    timer_seconds = fields.IntField(default=36)
    offhours_spread_seconds = fields.IntField(default=300)
    target_call_seconds = fields.IntField(default=120)
    unique_window_days = fields.IntField(default=30)
    session_minutes = fields.IntField(default=45)
    session_gap_minutes = fields.IntField(default=15)
    schedule: fields.JSONField[dict[str, Any]] = fields.JSONField(default=default_schedule)
    convenient_time = fields.CharField(max_length=5, default="10:00")
    # offices and departments lists
    offices_enabled = fields.BooleanField(default=False)
    offices_required = fields.BooleanField(default=False)
    offices_title = fields.CharField(max_length=100, default="")
    departments_enabled = fields.BooleanField(default=False)
    departments_required = fields.BooleanField(default=False)
    departments_title = fields.CharField(max_length=100, default="")
    # telephony, redial matrix, announcements (docs/calls.md): validated by core schemas
    telephony: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    redial_matrix: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    announcements: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    recording_retention_days = fields.IntField(
        null=True, description="null: PEREZVON_RECORDING_RETENTION_DAYS (0 keeps them)"
    )
    #: how the operator numbers are rung (docs/calls.md#operator-lines): hunt | round_robin | ring_all
    line_strategy = fields.CharField(
        max_length=11, default="hunt", db_default="hunt", description="hunt | round_robin | ring_all"
    )
    line_wait_seconds = fields.IntField(
        default=300, db_default=300, description="how long a callback waits for a free operator line"
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    calendar: fields.ReverseRelation[CalendarDay]

    class Meta:
        table = "connections"

    def domains(self) -> list[str]:
        return [self.domain, *self.extra_domains]

    async def save(
        self,
        using_db: Any = None,
        update_fields: Any = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        """Saved with its domains claimed in ``connection_domains`` in one transaction, so a domain
        another connection holds fails the save (IntegrityError) and nothing of it is stored."""
        from tortoise.transactions import in_transaction

        from perezvon.core.domains import claim_domains

        if update_fields is not None and not {"domain", "extra_domains"} & set(update_fields):
            await super().save(using_db, update_fields, force_create, force_update)
            return
        # in a caller's transaction this nests in it (tortoise keeps the current one per task)
        async with in_transaction() as db:
            await super().save(db, update_fields, force_create, force_update)
            await claim_domains(self.id, self.domains(), db)


class ConnectionDomain(Model):
    """A domain of one connection, in one form a browser sends it (docs/calls.md#connection-settings)."""

    # пример.рф and xn--e1afmkfd.xn--p1ai are two rows of the same connection. The unique index is
    # what keeps a domain with one connection when two saves come at the same instant: the admin's
    # check before saving only reads, and two readers can both see the domain free.
    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="domain_rows", on_delete=fields.CASCADE
    )
    connection_id: int
    domain = fields.CharField(max_length=253, unique=True)

    class Meta:
        table = "connection_domains"


class CalendarDay(Model):
    """A per-date override of the weekly schedule."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="calendar", on_delete=fields.CASCADE
    )
    connection_id: int
    date = fields.DateField()
    kind = fields.CharField(max_length=10, description="short | holiday | workday")
    opens = fields.CharField(max_length=5, null=True)
    closes = fields.CharField(max_length=5, null=True)

    class Meta:
        table = "calendar_days"
        unique_together = (("connection", "date"),)


class AccessGrant(Model):
    """User x (project or connection) x level. A project grant covers its connections."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="grants", on_delete=fields.CASCADE
    )
    user_id: int
    project: fields.ForeignKeyNullableRelation[Project] = fields.ForeignKeyField(
        "perezvon.Project", related_name="grants", null=True, on_delete=fields.CASCADE
    )
    project_id: int | None
    connection: fields.ForeignKeyNullableRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="grants", null=True, on_delete=fields.CASCADE
    )
    connection_id: int | None
    level = fields.CharField(max_length=4, description="view | edit | full")
    may_see_contacts = fields.BooleanField(
        default=True,
        db_default=True,
        description="shows clients' phones and e-mails in full (docs/admin.md#who-may-do-what)",
    )

    class Meta:
        table = "access_grants"


class Office(Model):
    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="offices", on_delete=fields.CASCADE
    )
    connection_id: int
    name = fields.CharField(max_length=200)
    address = fields.CharField(max_length=300, default="")
    alt_name = fields.CharField(max_length=200, default="", description="matches the office named in site-form e-mails")
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)
    phone_selector = fields.CharField(max_length=300, default="", description="CSS selector of the site's phone")
    is_active = fields.BooleanField(default=True)
    sort_order = fields.IntField(default=0)
    line_strategy = fields.CharField(max_length=11, default="", db_default="", description="empty: as the connection")

    class Meta:
        table = "offices"
        ordering = ["sort_order", "id"]


class Department(Model):
    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="departments", on_delete=fields.CASCADE
    )
    connection_id: int
    name = fields.CharField(max_length=200)
    is_active = fields.BooleanField(default=True)
    sort_order = fields.IntField(default=0)

    class Meta:
        table = "departments"
        ordering = ["sort_order", "id"]


class OperatorNumber(Model):
    """Where callbacks are routed: connection-wide (no office) or an office's own."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="operator_numbers", on_delete=fields.CASCADE
    )
    connection_id: int
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "perezvon.Office", related_name="operator_numbers", null=True, on_delete=fields.CASCADE
    )
    office_id: int | None
    phone = fields.CharField(max_length=20, description="E.164")
    extension = fields.CharField(max_length=20, default="")
    sort_order = fields.IntField(default=0)
    #: at most this many calls on the number at once; 0: no limit (docs/calls.md#operator-lines)
    max_calls = fields.IntField(default=0, db_default=0, description="simultaneous calls at most (0: no limit)")
    failures_in_row = fields.IntField(default=0, db_default=0, description="dialled and not answered, in a row")

    class Meta:
        table = "operator_numbers"
        ordering = ["sort_order", "id"]


class PluginKind:
    """The two kinds of plugin a connection switches on, each with its own settings."""

    APPLICATION = "application"
    INTEGRATION = "integration"
    ALL = (APPLICATION, INTEGRATION)


class PluginEnablement(Model):
    """One plugin (an application or an integration) switched on or off for a connection, with its settings.

    Read and written only through :mod:`perezvon.core.enablement`, which loads,
    defaults, validates and masks the settings the same way everywhere.
    """

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="plugins", on_delete=fields.CASCADE
    )
    connection_id: int
    kind = fields.CharField(max_length=12, description="application | integration")
    key = fields.CharField(max_length=64)
    is_on = fields.BooleanField(default=True)
    settings: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "plugin_enablements"
        # also the index of every read: by connection (one or many), then kind and key
        unique_together = (("connection", "kind", "key"),)


class NotificationRecipient(Model):
    """Who is e-mailed about calls, optionally only for one office/department."""

    id = fields.IntField(primary_key=True)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="recipients", on_delete=fields.CASCADE
    )
    connection_id: int
    email = fields.CharField(max_length=254)
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "perezvon.Office", related_name="recipients", null=True, on_delete=fields.CASCADE
    )
    office_id: int | None
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "perezvon.Department", related_name="recipients", null=True, on_delete=fields.CASCADE
    )
    department_id: int | None
    on_success = fields.BooleanField(default=True)
    on_failure = fields.BooleanField(default=True)

    class Meta:
        table = "notification_recipients"


class Lead(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="leads", on_delete=fields.CASCADE
    )
    connection_id: int
    source = fields.CharField(max_length=64, description="lead source key: widget, leadgen, siteforms, api")
    phone = fields.CharField(max_length=20, description="E.164")
    name = fields.CharField(max_length=200, default="")
    office: fields.ForeignKeyNullableRelation[Office] = fields.ForeignKeyField(
        "perezvon.Office", related_name="leads", null=True, on_delete=fields.SET_NULL
    )
    office_id: int | None
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "perezvon.Department", related_name="leads", null=True, on_delete=fields.SET_NULL
    )
    department_id: int | None
    preferred_at = readable_when_out_of_range(fields.DatetimeField(null=True))
    page_url = fields.CharField(max_length=2048, default="")
    referrer = fields.CharField(max_length=2048, default="")
    utm_source = fields.CharField(max_length=256, default="")
    utm_medium = fields.CharField(max_length=256, default="")
    utm_campaign = fields.CharField(max_length=256, default="")
    utm_content = fields.CharField(max_length=256, default="")
    utm_term = fields.CharField(max_length=256, default="")
    channel = fields.CharField(max_length=10, default=Channel.DIRECT)
    visitor_id = fields.CharField(max_length=64, default="")
    visit: fields.JSONField[dict[str, Any]] = fields.JSONField(
        default=dict, description="pages, seconds on site, trigger, rule name"
    )
    displayed_phone = fields.CharField(max_length=40, default="", description="number shown on the site")
    extra: fields.JSONField[dict[str, Any]] = fields.JSONField(
        default=dict, description="source-specific data (e.g. the raw form fields)"
    )
    client_ip = fields.CharField(max_length=45, default="")
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "leads"
        indexes = (("connection_id", "phone", "created_at"),)


class Call(Model):
    """The callback for one lead and its attempt chain."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    lead: fields.OneToOneRelation[Lead] = fields.OneToOneField(
        "perezvon.Lead", related_name="call", on_delete=fields.CASCADE
    )
    lead_id: uuid.UUID
    connection: fields.ForeignKeyRelation[Connection] = fields.ForeignKeyField(
        "perezvon.Connection", related_name="calls", on_delete=fields.CASCADE
    )
    connection_id: int
    created_at = fields.DatetimeField()
    state = fields.CharField(max_length=10, default=CallState.SCHEDULED)
    display_status = fields.CharField(max_length=12, default=DisplayStatus.PENDING)
    reason = fields.CharField(max_length=REASON_LENGTH, default="")
    first_direction = fields.CharField(max_length=14, default="operator_first")
    attempts_made = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    next_direction = fields.CharField(max_length=14, null=True)
    operator_number = fields.CharField(max_length=20, default="")
    duration_seconds = fields.IntField(default=0, description="talk time of the successful attempt")
    is_unique = fields.BooleanField(null=True)
    is_target = fields.BooleanField(null=True)
    recording = fields.CharField(max_length=500, default="")
    finished_at = fields.DatetimeField(null=True)
    attempts: fields.ReverseRelation[Attempt]

    class Meta:
        table = "calls"
        indexes = (("connection_id", "created_at"), ("state", "next_attempt_at"))


class Attempt(Model):
    """One dial attempt of a call: the status pair and the reason."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    call: fields.ForeignKeyRelation[Call] = fields.ForeignKeyField(
        "perezvon.Call", related_name="attempts", on_delete=fields.CASCADE
    )
    call_id: uuid.UUID
    number = fields.IntField(description="1 = first call, 2..5 = redials")
    direction = fields.CharField(max_length=14)
    operator_number = fields.CharField(max_length=20, default="")
    backend = fields.CharField(max_length=64, default="")
    started_at = fields.DatetimeField()
    dialled_at = fields.DatetimeField(null=True, description="when the backend began the first leg")
    ended_at = fields.DatetimeField(null=True)
    operator_status = fields.IntField(null=True)
    client_status = fields.IntField(null=True)
    duration_seconds = fields.IntField(default=0)
    display_status = fields.CharField(max_length=12, default=DisplayStatus.PENDING)
    reason = fields.CharField(max_length=REASON_LENGTH, default="")
    recording = fields.CharField(max_length=500, default="")
    recording_bytes = fields.BigIntField(
        default=0, db_default=0, description="the size of the recording (0: none, or not measured)"
    )

    class Meta:
        table = "attempts"
        unique_together = (("call", "number"),)
        ordering = ["number"]


class CallTag(Model):
    """A tag a user put on a call by hand (automatic tags are fields of Call)."""

    id = fields.IntField(primary_key=True)
    call: fields.ForeignKeyRelation[Call] = fields.ForeignKeyField(
        "perezvon.Call", related_name="tags", on_delete=fields.CASCADE
    )
    call_id: uuid.UUID
    name = fields.CharField(max_length=64)
    # the call's connection, copied here so that the filters' list of tag names reads one index
    # instead of joining every tag to its call (190 ms on a million calls); the call's cascade
    # removes the tag, so no foreign key is needed
    connection_id = fields.IntField(null=True)
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="tags", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "call_tags"
        unique_together = (("call", "name"),)
        indexes = (("connection_id", "name"),)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        if self.connection_id is None:  # whoever tags a call need not know where its connection is kept
            self.connection_id = (await Call.get(id=self.call_id).only("id", "connection_id")).connection_id
        await super().save(*args, **kwargs)


class CallNote(Model):
    """A user's free-text note on a call (docs/admin.md#notes-on-a-call)."""

    id = fields.IntField(primary_key=True)
    call: fields.ForeignKeyRelation[Call] = fields.ForeignKeyField(
        "perezvon.Call", related_name="notes", on_delete=fields.CASCADE
    )
    call_id: uuid.UUID
    author: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="notes", null=True, on_delete=fields.SET_NULL
    )
    author_id: int | None
    text = fields.CharField(max_length=2000)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "call_notes"
        indexes = (("call_id", "created_at"),)


class CallRedial(Model):
    """A manual "call again" of a call: who asked, when, which attempt (docs/calls.md#call-again)."""

    id = fields.IntField(primary_key=True)
    call: fields.ForeignKeyRelation[Call] = fields.ForeignKeyField(
        "perezvon.Call", related_name="redials", on_delete=fields.CASCADE
    )
    call_id: uuid.UUID
    attempt_number = fields.IntField(description="the attempt the request placed")
    via = fields.CharField(max_length=5, description="admin | api")
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="redials", null=True, on_delete=fields.SET_NULL
    )
    user_id: int | None
    api_key: fields.ForeignKeyNullableRelation[ApiKey] = fields.ForeignKeyField(
        "perezvon.ApiKey", related_name="redials", null=True, on_delete=fields.SET_NULL
    )
    api_key_id: int | None
    requested_by = fields.CharField(
        max_length=300, default="", description="who asked, as it read then: the user's name, the key's name and prefix"
    )
    due_at = fields.DatetimeField(description="when the attempt is due: now, or the next opening")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "call_redials"
        indexes = (("call_id", "created_at"),)


class Delivery(Model):
    """One try of pushing an event to an integration (shown per call in the admin)."""

    id = fields.IntField(primary_key=True)
    call: fields.ForeignKeyRelation[Call] = fields.ForeignKeyField(
        "perezvon.Call", related_name="deliveries", on_delete=fields.CASCADE
    )
    call_id: uuid.UUID
    integration_key = fields.CharField(max_length=64)
    event = fields.CharField(max_length=32)
    try_number = fields.IntField(default=1)
    ok = fields.BooleanField()
    status = fields.IntField(null=True)
    response = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    attempt_number = fields.IntField(null=True, description="the attempt an attempt_finished event is about")
    next_try_at = fields.DatetimeField(null=True, description="when a failed try is tried again (null: not again)")

    class Meta:
        table = "deliveries"
        # each delivery reads the call's earlier deliveries to this integration; the admin lists a call's
        indexes = (("call_id", "integration_key"),)


class PendingJob(Model):
    """A push or notification still to run, queued again by the sweep if its job is lost.

    Written in the same transaction as the change that calls for it, deleted when
    its job ends. A job lost with Redis or with a killed worker is queued again
    under the same id (docs/deploy.md#during-an-outage)."""

    job_id = fields.CharField(max_length=255, primary_key=True)
    function = fields.CharField(max_length=64)
    args: fields.JSONField[list[Any]] = fields.JSONField()
    queue = fields.CharField(max_length=64)
    due_at = fields.DatetimeField(db_index=True, description="when the job is (next) due")
    requeued = fields.IntField(default=0, description="how many times the sweep has queued it again")

    class Meta:
        table = "pending_jobs"


class ApiKey(Model):
    """A user's key for the read API (``Authorization: Bearer ...``). Only its SHA-256 is stored:
    keys are 256 random bits, so a fast hash is as safe as a slow one and costs nothing per request."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "perezvon.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    user_id: int
    name = fields.CharField(max_length=100, default="")
    prefix = fields.CharField(max_length=12, description="the first characters, shown so the owner can tell keys apart")
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"
