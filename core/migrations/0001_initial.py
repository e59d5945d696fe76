from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from perezvon.core.models import default_schedule, new_site_token
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Project",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(max_length=200)),
                ("legal_entity", fields.CharField(default="", max_length=300)),
                ("payment_type", fields.CharField(default="prepaid", description="prepaid | postpaid", max_length=10)),
                ("industry", fields.CharField(default="", max_length=200)),
                ("line_of_business", fields.CharField(default="", max_length=200)),
                ("city", fields.CharField(default="", max_length=100)),
                ("manager_name", fields.CharField(default="", max_length=200)),
                ("manager_phone", fields.CharField(default="", max_length=20)),
                ("manager_email", fields.CharField(default="", max_length=254)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "projects", "app": "perezvon", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Connection",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "project",
                    fields.ForeignKeyField(
                        "perezvon.Project",
                        source_field="project_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="connections",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("kind", fields.CharField(default="site", max_length=20)),
                ("domain", fields.CharField(unique=True, max_length=253)),
                (
                    "extra_domains",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("name", fields.CharField(default="", max_length=200)),
                ("specialization", fields.CharField(default="", max_length=200)),
                ("timezone", fields.CharField(default="Europe/Moscow", max_length=64)),
                ("is_on", fields.BooleanField(default=True)),
                ("token", fields.CharField(default=new_site_token, unique=True, max_length=64)),
                ("timer_seconds", fields.IntField(default=36)),
                ("offhours_spread_seconds", fields.IntField(default=300)),
                ("target_call_seconds", fields.IntField(default=120)),
                ("unique_window_days", fields.IntField(default=30)),
                ("session_minutes", fields.IntField(default=45)),
                ("session_gap_minutes", fields.IntField(default=15)),
                (
                    "schedule",
                    fields.JSONField(
                        default=default_schedule, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("convenient_time", fields.CharField(default="10:00", max_length=5)),
                ("offices_enabled", fields.BooleanField(default=False)),
                ("offices_required", fields.BooleanField(default=False)),
                ("offices_title", fields.CharField(default="", max_length=100)),
                ("departments_enabled", fields.BooleanField(default=False)),
                ("departments_required", fields.BooleanField(default=False)),
                ("departments_title", fields.CharField(default="", max_length=100)),
                (
                    "telephony",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "redial_matrix",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "announcements",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "connections",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "One site (one domain) of a project, with its settings.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AppEnablement",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="apps",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("app_key", fields.CharField(max_length=64)),
                ("is_on", fields.BooleanField(default=True)),
                (
                    "settings",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
            ],
            options={
                "table": "app_enablements",
                "app": "perezvon",
                "unique_together": (("connection", "app_key"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CalendarDay",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="calendar",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("date", fields.DateField()),
                ("kind", fields.CharField(description="short | holiday | workday", max_length=10)),
                ("opens", fields.CharField(null=True, max_length=5)),
                ("closes", fields.CharField(null=True, max_length=5)),
            ],
            options={
                "table": "calendar_days",
                "app": "perezvon",
                "unique_together": (("connection", "date"),),
                "pk_attr": "id",
                "table_description": "A per-date override of the weekly schedule.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Department",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="departments",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("is_active", fields.BooleanField(default=True)),
                ("sort_order", fields.IntField(default=0)),
            ],
            options={"table": "departments", "app": "perezvon", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="IntegrationEnablement",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="integrations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("integration_key", fields.CharField(max_length=64)),
                ("is_on", fields.BooleanField(default=True)),
                (
                    "settings",
                    fields.JSONField(
                        default=dict, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
            ],
            options={
                "table": "integration_enablements",
                "app": "perezvon",
                "unique_together": (("connection", "integration_key"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Office",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="offices",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                ("address", fields.CharField(default="", max_length=300)),
                (
                    "alt_name",
                    fields.CharField(
                        default="", description="matches the office named in site-form e-mails", max_length=200
                    ),
                ),
                ("latitude", fields.FloatField(null=True)),
                ("longitude", fields.FloatField(null=True)),
                (
                    "phone_selector",
                    fields.CharField(default="", description="CSS selector of the site's phone", max_length=300),
                ),
                ("is_active", fields.BooleanField(default=True)),
                ("sort_order", fields.IntField(default=0)),
            ],
            options={"table": "offices", "app": "perezvon", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Lead",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="leads",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "source",
                    fields.CharField(description="lead source key: widget, leadgen, siteforms, api", max_length=64),
                ),
                ("phone", fields.CharField(description="E.164", max_length=20)),
                ("name", fields.CharField(default="", max_length=200)),
                (
                    "office",
                    fields.ForeignKeyField(
                        "perezvon.Office",
                        source_field="office_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="leads",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "department",
                    fields.ForeignKeyField(
                        "perezvon.Department",
                        source_field="department_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="leads",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("preferred_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("page_url", fields.CharField(default="", max_length=2048)),
                ("referrer", fields.CharField(default="", max_length=2048)),
                ("utm_source", fields.CharField(default="", max_length=256)),
                ("utm_medium", fields.CharField(default="", max_length=256)),
                ("utm_campaign", fields.CharField(default="", max_length=256)),
                ("utm_content", fields.CharField(default="", max_length=256)),
                ("utm_term", fields.CharField(default="", max_length=256)),
                ("channel", fields.CharField(default="direct", max_length=10)),
                ("visitor_id", fields.CharField(default="", max_length=64)),
                (
                    "visit",
                    fields.JSONField(
                        default=dict,
                        description="pages, seconds on site, trigger, rule name",
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "displayed_phone",
                    fields.CharField(default="", description="number shown on the site", max_length=40),
                ),
                (
                    "extra",
                    fields.JSONField(
                        default=dict,
                        description="source-specific data (e.g. the raw form fields)",
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("client_ip", fields.CharField(default="", max_length=45)),
                ("created_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "leads",
                "app": "perezvon",
                "indexes": [Index(fields=["connection_id", "phone", "created_at"])],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Call",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "lead",
                    fields.OneToOneField(
                        "perezvon.Lead",
                        source_field="lead_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="call",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="calls",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("state", fields.CharField(default="scheduled", max_length=10)),
                ("display_status", fields.CharField(default="pending", max_length=12)),
                ("reason", fields.CharField(default="", max_length=300)),
                ("first_direction", fields.CharField(default="operator_first", max_length=14)),
                ("attempts_made", fields.IntField(default=0)),
                ("next_attempt_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("next_direction", fields.CharField(null=True, max_length=14)),
                ("operator_number", fields.CharField(default="", max_length=20)),
                ("duration_seconds", fields.IntField(default=0, description="talk time of the successful attempt")),
                ("is_unique", fields.BooleanField(null=True)),
                ("is_target", fields.BooleanField(null=True)),
                ("recording", fields.CharField(default="", max_length=500)),
                ("finished_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "calls",
                "app": "perezvon",
                "indexes": [Index(fields=["connection_id", "created_at"]), Index(fields=["state", "next_attempt_at"])],
                "pk_attr": "id",
                "table_description": "The callback for one lead and its attempt chain.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Attempt",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="attempts",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("number", fields.IntField(description="1 = first call, 2..5 = redials")),
                ("direction", fields.CharField(max_length=14)),
                ("operator_number", fields.CharField(default="", max_length=20)),
                ("backend", fields.CharField(default="", max_length=64)),
                ("started_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "dialled_at",
                    fields.DatetimeField(
                        null=True,
                        description="when the backend began the first leg",
                        auto_now=False,
                        auto_now_add=False,
                    ),
                ),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("operator_status", fields.IntField(null=True)),
                ("client_status", fields.IntField(null=True)),
                ("duration_seconds", fields.IntField(default=0)),
                ("display_status", fields.CharField(default="pending", max_length=12)),
                ("reason", fields.CharField(default="", max_length=300)),
                ("recording", fields.CharField(default="", max_length=500)),
            ],
            options={
                "table": "attempts",
                "app": "perezvon",
                "unique_together": (("call", "number"),),
                "pk_attr": "id",
                "table_description": "One dial attempt of a call: the status pair and the reason.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Delivery",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("integration_key", fields.CharField(max_length=64)),
                ("event", fields.CharField(max_length=32)),
                ("try_number", fields.IntField(default=1)),
                ("ok", fields.BooleanField()),
                ("status", fields.IntField(null=True)),
                ("response", fields.CharField(default="", max_length=500)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "deliveries",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "One try of pushing an event to an integration (shown per call in the admin).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="NotificationRecipient",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="recipients",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("email", fields.CharField(max_length=254)),
                (
                    "office",
                    fields.ForeignKeyField(
                        "perezvon.Office",
                        source_field="office_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="recipients",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "department",
                    fields.ForeignKeyField(
                        "perezvon.Department",
                        source_field="department_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="recipients",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("on_success", fields.BooleanField(default=True)),
                ("on_failure", fields.BooleanField(default=True)),
            ],
            options={
                "table": "notification_recipients",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "Who is e-mailed about calls, optionally only for one office/department.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OperatorNumber",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="operator_numbers",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "office",
                    fields.ForeignKeyField(
                        "perezvon.Office",
                        source_field="office_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="operator_numbers",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("phone", fields.CharField(description="E.164", max_length=20)),
                ("extension", fields.CharField(default="", max_length=20)),
                ("sort_order", fields.IntField(default=0)),
            ],
            options={
                "table": "operator_numbers",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "Where callbacks are routed: connection-wide (no office) or an office's own.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="User",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("phone", fields.CharField(unique=True, description="login, E.164", max_length=20)),
                ("email", fields.CharField(null=True, max_length=254)),
                ("first_name", fields.CharField(default="", max_length=100)),
                ("last_name", fields.CharField(default="", max_length=100)),
                ("position", fields.CharField(default="", max_length=100)),
                (
                    "password_hash",
                    fields.CharField(
                        null=True, description="argon2 hash, empty until the user is activated", max_length=255
                    ),
                ),
                ("is_staff", fields.BooleanField(default=False)),
                ("is_active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("last_login_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={"table": "users", "app": "perezvon", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AccessGrant",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="grants",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "project",
                    fields.ForeignKeyField(
                        "perezvon.Project",
                        source_field="project_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="grants",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "connection",
                    fields.ForeignKeyField(
                        "perezvon.Connection",
                        source_field="connection_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="grants",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("level", fields.CharField(description="view | edit | full", max_length=4)),
            ],
            options={
                "table": "access_grants",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "User x (project or connection) x level. A project grant covers its connections.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ActivationToken",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="activation_tokens",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "activation_tokens",
                "app": "perezvon",
                "pk_attr": "id",
                "table_description": "A one-time link to set a password. Only its hash is stored.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CallTag",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "call",
                    fields.ForeignKeyField(
                        "perezvon.Call",
                        source_field="call_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="tags",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                (
                    "created_by",
                    fields.ForeignKeyField(
                        "perezvon.User",
                        source_field="created_by_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="tags",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "call_tags",
                "app": "perezvon",
                "unique_together": (("call", "name"),),
                "pk_attr": "id",
                "table_description": "A tag a user put on a call by hand (automatic tags are fields of Call).",
            },
            bases=["Model"],
        ),
    ]
