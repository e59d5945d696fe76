"""Who may do what (docs/admin.md#who-may-do-what): the one grant check the admin and the read API share.

A grant gives a user a level -- view, edit or full -- on a project or on one
connection; a project grant covers every connection of the project, and the
higher of two levels wins. Staff users may do everything. View reads; edit
changes settings; full also switches apps and integrations on and off and
manages users and grants.

Each grant also says whether its holder may see the clients' phones and
e-mails in full (``may_see_contacts``); a user sees a connection's contacts
when any grant covering it -- its own or its project's -- allows it (as with
levels, the more generous grant wins). Others read them masked
(:mod:`perezvon.core.masking`).

:class:`Access` is built once per request from the user's grants (two small
queries) and then answers every question without touching the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Collection, Mapping
from typing import Any, overload

from perezvon.core.models import AccessGrant, ApiKey, Connection, GrantLevel, User

RANK = {None: 0, GrantLevel.VIEW: 1, GrantLevel.EDIT: 2, GrantLevel.FULL: 3}


class AccessDenied(Exception):
    """The user lacks the level asked for (or the object is not theirs to see)."""


def at_least(level: str | None, wanted: str) -> bool:
    return RANK[level] >= RANK[wanted]


@overload
def _higher(a: str | None, b: str) -> str: ...
@overload
def _higher(a: str | None, b: str | None) -> str | None: ...
def _higher(a: str | None, b: str | None) -> str | None:
    return a if RANK[a] >= RANK[b] else b


@dataclasses.dataclass
class Access:
    user: User
    #: project id -> level granted on the project itself
    project_levels: dict[int, str]
    #: connection id -> effective level (own grant or its project's, the higher)
    connection_levels: dict[int, str]
    #: connection id -> project id, for every connection the user can see
    connection_projects: dict[int, int]
    #: connection id -> True for each visible connection whose client contacts the user sees in full
    contact_connections: dict[int, bool] = dataclasses.field(default_factory=dict)

    @property
    def is_staff(self) -> bool:
        return self.user.is_staff

    @classmethod
    async def for_user(cls, user: User) -> Access:
        if user.is_staff:
            return cls(user, {}, {}, {})
        grants = await AccessGrant.filter(user_id=user.id).values(
            "project_id", "connection_id", "level", "may_see_contacts"
        )
        project_levels: dict[int, str] = {}
        own: dict[int, str] = {}
        project_contacts: set[int] = set()
        own_contacts: set[int] = set()
        for grant in grants:
            if grant["level"] not in GrantLevel.ORDER:
                continue
            if grant["project_id"] is not None:
                project_levels[grant["project_id"]] = _higher(project_levels.get(grant["project_id"]), grant["level"])
                if grant["may_see_contacts"]:
                    project_contacts.add(grant["project_id"])
            elif grant["connection_id"] is not None:
                own[grant["connection_id"]] = _higher(own.get(grant["connection_id"]), grant["level"])
                if grant["may_see_contacts"]:
                    own_contacts.add(grant["connection_id"])
        rows = []
        if project_levels or own:
            from tortoise.expressions import Q

            rows = await Connection.filter(Q(project_id__in=list(project_levels)) | Q(id__in=list(own))).values(
                "id", "project_id"
            )
        connection_levels, connection_projects, contacts = {}, {}, {}
        for row in rows:
            level = _higher(own.get(row["id"]), project_levels.get(row["project_id"]))
            if level:
                connection_levels[row["id"]] = level
                connection_projects[row["id"]] = row["project_id"]
                if row["id"] in own_contacts or row["project_id"] in project_contacts:
                    contacts[row["id"]] = True
        return cls(user, project_levels, connection_levels, connection_projects, contacts)

    # --- levels ---------------------------------------------------------------------

    def connection_level(self, connection_id: int) -> str | None:
        if self.is_staff:
            return GrantLevel.FULL
        return self.connection_levels.get(connection_id)

    def project_level(self, project_id: int) -> str | None:
        """The level on the project itself; a connection grant alone lets its holder *view* the project."""
        if self.is_staff:
            return GrantLevel.FULL
        level = self.project_levels.get(project_id)
        if level is None and project_id in self.connection_projects.values():
            return GrantLevel.VIEW
        return level

    def can_connection(self, connection_id: int, wanted: str = GrantLevel.VIEW) -> bool:
        return at_least(self.connection_level(connection_id), wanted)

    def can_project(self, project_id: int, wanted: str = GrantLevel.VIEW) -> bool:
        return at_least(self.project_level(project_id), wanted)

    def require_connection(self, connection_id: int, wanted: str = GrantLevel.VIEW) -> None:
        if not self.can_connection(connection_id, wanted):
            raise AccessDenied(f"{wanted} on connection {connection_id}")

    def require_project(self, project_id: int, wanted: str = GrantLevel.VIEW) -> None:
        if not self.can_project(project_id, wanted):
            raise AccessDenied(f"{wanted} on project {project_id}")

    def require_staff(self) -> None:
        if not self.is_staff:
            raise AccessDenied("staff only")

    # --- client contacts ------------------------------------------------------------------

    def sees_contacts(self, connection_id: int) -> bool:
        """Whether the client phones and e-mails of this connection's calls are shown in full (a dict lookup)."""
        return self.is_staff or connection_id in self.contact_connections

    def masks_any(self) -> bool:
        """Whether some visible connection's contacts are masked for this user."""
        return not self.is_staff and len(self.contact_connections) < len(self.connection_levels)

    def connection_ids_to_search(self, filters: dict[str, Any]) -> list[int] | None:
        """The connections whose calls a listing with ``filters`` may return; ``None`` means all (staff).

        A search by phone looks only where the user sees contacts in full: on a masked connection it
        finds nothing, so typing a number cannot tell whether that client ever called."""
        if self.is_staff:
            return None
        if filters.get("phone"):
            return sorted(self.contact_connections)
        return sorted(self.connection_levels)

    # --- what may be listed -----------------------------------------------------------

    def visible_connection_ids(self) -> list[int] | None:
        """Connections whose calls the user may read; ``None`` means all (staff)."""
        if self.is_staff:
            return None
        return sorted(self.connection_levels)

    def visible_project_ids(self) -> list[int] | None:
        if self.is_staff:
            return None
        return sorted(set(self.project_levels) | set(self.connection_projects.values()))


# --- API keys ------------------------------------------------------------------------------

API_KEY_PREFIX = "pzv_"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(user: User, name: str = "") -> tuple[ApiKey, str]:
    """Make a key for ``user``; the raw key is returned once and never stored."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = await ApiKey.create(user=user, name=name.strip()[:100], prefix=raw[:12], key_hash=hash_api_key(raw))
    return key, raw


async def user_for_api_key(raw: str) -> User | None:
    """The active user owning an unrevoked key, or None."""
    key = await api_key_for(raw)
    return key.user if key is not None else None


async def api_key_for(raw: str) -> ApiKey | None:
    """The unrevoked key of an active user (its ``user`` loaded), or None."""
    if not raw or not raw.startswith(API_KEY_PREFIX) or len(raw) > 200:
        return None
    key = await ApiKey.get_or_none(key_hash=hash_api_key(raw), revoked_at=None).prefetch_related("user")
    if key is None or not key.user.is_active:
        return None
    now = dt.datetime.now(dt.UTC)
    # record use at most once a minute: a busy CRM must not turn every read into a write
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        await ApiKey.filter(id=key.id).update(last_used_at=now)
    return key


# --- notifications -----------------------------------------------------------------------


async def active_users_by_email(emails: Collection[str]) -> dict[str, int]:
    """The active users whose e-mail is one of ``emails`` (compared case-insensitively):
    lower-case address -> user id. How a notifier that reaches people elsewhere than by e-mail
    (a messenger chat linked to the user) finds who a notification's recipients are."""
    wanted = {email.strip().lower() for email in emails if email and email.strip()}
    if not wanted:
        return {}
    from tortoise.functions import Lower

    users = await User.annotate(email_lower=Lower("email")).filter(email_lower__in=list(wanted), is_active=True)
    return {(user.email or "").strip().lower(): user.id for user in users}


async def addresses_without_contacts(connection_id: int, emails: Collection[str]) -> set[str]:
    """Those of ``emails`` that must receive a connection's client contacts masked: the address of an
    active user who may not see them there (docs/admin.md#who-may-do-what). An address no user has
    (a shared sales mailbox) was put there by someone with edit access, and gets them in full."""
    return (await addresses_without_contacts_of_many({connection_id: emails})).get(connection_id, set())


async def addresses_without_contacts_of_many(wanted: Mapping[int, Collection[str]]) -> dict[int, set[str]]:
    """:func:`addresses_without_contacts` for several connections at once, each user's access read once."""
    lowered = {email.strip().lower() for emails in wanted.values() for email in emails}
    if not lowered:
        return {}
    from tortoise.functions import Lower

    users = await User.annotate(email_lower=Lower("email")).filter(email_lower__in=sorted(lowered), is_active=True)
    accesses = [((user.email or "").strip().lower(), await Access.for_user(user)) for user in users]
    out: dict[int, set[str]] = {}
    for connection_id, emails in wanted.items():
        blind = {email for email, access in accesses if not access.sees_contacts(connection_id)}
        out[connection_id] = {email for email in emails if email.strip().lower() in blind}
    return out


async def users_with_access(connection_id: int | None, level: str = GrantLevel.FULL) -> list[User]:
    """The active users with at least ``level`` on a connection through a grant of their own or of its
    project, for telling them about it (docs/notifications.md); staff are not among them unless such a
    grant names them. ``connection_id=None``: the active staff users (for what concerns the deployment)."""
    if connection_id is None:
        return list(await User.filter(is_active=True, is_staff=True).order_by("id"))
    connection = await Connection.get_or_none(id=connection_id).only("id", "project_id")
    if connection is None:
        return []
    from tortoise.expressions import Q

    grants = await AccessGrant.filter(
        Q(connection_id=connection.id) | Q(project_id=connection.project_id),
        user__is_active=True,
    ).values_list("user_id", "level")
    wanted = {user_id for user_id, granted in grants if granted in GrantLevel.ORDER and at_least(granted, level)}
    return list(await User.filter(id__in=sorted(wanted)).order_by("id")) if wanted else []
