"""Who has access to one connection, managed by its "full" users (docs/admin.md#who-may-do-what).

A connection's full user (a grant on the connection or on its project, or staff) lists the
grants on that connection, gives access to a user by phone -- inviting a new one when the
phone has no account yet --, changes a level and removes a grant. Only grants on this very
connection are touched: never another connection's, never the project's. Nobody raises
anyone above their own level, and nobody changes or removes their own grant here (so a
manager cannot lock themself out by a slip; another full user or staff can).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from starlette.datastructures import FormData
from starlette.responses import Response
from tortoise.exceptions import IntegrityError

from perezvon.core.access import RANK
from perezvon.core.models import AccessGrant, Connection, GrantLevel, Project, User
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.web.admin.forms import flat_errors
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.views.auth import send_activation


def grant_fields(
    form: FormData, errors: dict[str, list[str]], highest: str | None, sees_contacts: bool
) -> dict[str, Any]:
    """The grant's own fields from a form (the level and the contacts right), checked; problems go to ``errors``.

    One place for what a grant form carries, so a new per-grant field is one more key here
    and one more input in the template's ``grant_inputs`` block.
    """
    level = form.get("level")
    if level not in GrantLevel.ORDER:
        errors["level"] = ["Choose a level."]
    elif RANK[level] > RANK[highest]:
        errors["level"] = ["You cannot give a level above your own."]
    may_see_contacts = form.get("may_see_contacts") == "1"
    if may_see_contacts and not sees_contacts:  # as with levels: nobody gives more than they have
        errors["may_see_contacts"] = ["You cannot let others see clients' phones and e-mails: you do not see them."]
    return {"level": level, "may_see_contacts": may_see_contacts}


class InviteSchema(Schema):
    """A new user invited by a connection's full user: the e-mail gets the activation link."""

    email = fields.Email(required=True, metadata={"label": "E-mail"})
    first_name = fields.String(load_default="", validate=validate.Length(max=100))
    last_name = fields.String(load_default="", validate=validate.Length(max=100))


async def find_or_invite(ctx: Ctx, form: FormData, errors: dict[str, list[str]]) -> tuple[User | None, str | None]:
    """The user with the form's phone, or a new one invited by e-mail when the phone has no account.

    Returns the user (None on errors, which go to ``errors``) and the activation link when it
    could not be e-mailed (to pass on by hand).
    """
    try:
        phone = normalise(form.get("phone") or "")
    except InvalidPhone:
        errors["phone"] = ["Enter a mobile phone, e.g. +7 916 123-45-67."]
        return None, None
    user = await User.get_or_none(phone=phone)
    if user is not None:
        return user, None
    raw = {name: (form.get(name) or "").strip() for name in ("email", "first_name", "last_name")}
    if not raw["email"]:
        errors["email"] = ["No user has this phone yet. Give their e-mail to invite them."]
        return None, None
    try:
        loaded = InviteSchema().load(raw)
    except ValidationError as exc:
        errors.update(flat_errors(exc.messages))
        return None, None
    try:
        # no password until the new user opens the activation link; never staff from here
        user = await User.create(phone=phone, password_hash=None, is_staff=False, **loaded)
    except IntegrityError:  # invited by someone else this very moment
        user = await User.get(phone=phone)
        return user, None
    return user, await send_activation(ctx, user)


async def connection_users(ctx: Ctx) -> Response:
    connection = ctx.connection
    errors: dict[str, list[str]] = {}
    link = None
    highest = ctx.access.connection_level(connection.id)
    sees_contacts = ctx.access.sees_contacts(connection.id)
    if ctx.request.method == "POST":
        form = ctx.form
        action = form.get("action")
        if action in ("level", "delete"):
            grant = await _own_connection_grant(ctx, connection, form.get("id") or "")
            if grant is None:
                return await ctx.error(404, "There is no such grant on this connection.")
            if grant.user_id == ctx.user.id:
                return await ctx.error(
                    403, "You cannot change or remove your own access. Ask another full user or staff."
                )
            if action == "delete":
                await grant.delete()
                ctx.flash(ctx._("The grant is removed."))
                return ctx.redirect(f"/connections/{connection.id}/users")
            # a right the grant already has may stay even when the manager lacks it
            values = grant_fields(form, errors, highest, sees_contacts or grant.may_see_contacts)
            if not errors:
                await AccessGrant.filter(id=grant.id).update(**values)
                ctx.flash(ctx._("The grant is saved."))
                return ctx.redirect(f"/connections/{connection.id}/users")
        else:
            values = grant_fields(form, errors, highest, sees_contacts)
            user, link = await find_or_invite(ctx, form, errors) if not errors else (None, None)
            if user is not None and user.id == ctx.user.id:
                errors["phone"] = ["You cannot change or remove your own access. Ask another full user or staff."]
            elif user is not None and not errors:
                await AccessGrant.filter(user_id=user.id, project_id=None, connection_id=connection.id).delete()
                await AccessGrant.create(user=user, project_id=None, connection_id=connection.id, **values)
                if link is None:
                    ctx.flash(ctx._("The grant is saved."))
                    return ctx.redirect(f"/connections/{connection.id}/users")
    grants = (
        await AccessGrant.filter(connection_id=connection.id)
        .prefetch_related("user")
        .order_by("user__last_name", "user__first_name", "id")
    )
    project_grants = (
        await AccessGrant.filter(project_id=connection.project_id)
        .prefetch_related("user")
        .order_by("user__last_name", "user__first_name", "id")
    )
    return await ctx.render(
        "admin/connection_users.html",
        status_code=400 if errors else 200,
        connection=connection,
        project=await Project.get(id=connection.project_id),
        grants=grants,
        project_grants=project_grants,
        levels=[level for level in GrantLevel.ORDER if RANK[level] <= RANK[highest]],
        sees_contacts=sees_contacts,
        errors=errors,
        form=ctx.form if errors else {},
        link=link,
    )


async def _own_connection_grant(ctx: Ctx, connection: Connection, ident: str) -> AccessGrant | None:
    """A grant on this very connection, or None: ids of other connections' grants are not found."""
    if not ident.isdigit():
        return None
    return await AccessGrant.get_or_none(id=int(ident), connection_id=connection.id, project_id=None)
