"""Staff pages (docs/admin.md#who-may-do-what): users, projects, connections and grants."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from starlette.responses import Response
from tortoise.exceptions import IntegrityError

from perezvon.core.domains import domains_of_others
from perezvon.core.models import AccessGrant, Connection, GrantLevel, Project, User
from perezvon.core.schemas import PhoneField
from perezvon.web.admin.forms import field_views, flat_errors, load_form
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.views.auth import ACTIVATION_DAYS, send_activation, send_link, void_links
from perezvon.web.admin.views.settings import DOMAIN, clean_domain


class ProjectSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={"label": "Name"})
    legal_entity = fields.String(load_default="", validate=validate.Length(max=300), metadata={"label": "Legal entity"})
    payment_type = fields.String(
        load_default="prepaid",
        validate=validate.OneOf(["prepaid", "postpaid"], labels=["Prepaid", "Postpaid"]),
        metadata={"label": "Payment type"},
    )
    industry = fields.String(load_default="", validate=validate.Length(max=200), metadata={"label": "Industry"})
    line_of_business = fields.String(
        load_default="", validate=validate.Length(max=200), metadata={"label": "Line of business"}
    )
    city = fields.String(load_default="", validate=validate.Length(max=100), metadata={"label": "City"})
    manager_name = fields.String(
        load_default="", validate=validate.Length(max=200), metadata={"label": "Personal manager"}
    )
    manager_phone = fields.String(
        load_default="", validate=validate.Length(max=20), metadata={"label": "Manager's phone"}
    )
    manager_email = fields.String(
        load_default="", validate=validate.Length(max=254), metadata={"label": "Manager's e-mail"}
    )
    # docs/recordings.md: the quota of the project's call recordings and what happens at it
    recording_quota_gb = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0.01, max=1_000_000),
        metadata={"label": "Recording quota, GB", "help": "Empty: no quota."},
    )
    recording_policy = fields.String(
        load_default="delete_oldest",
        validate=validate.OneOf(
            ["delete_oldest", "keep"],
            labels=["Delete the oldest recordings", "Keep them and mark the project over quota"],
        ),
        metadata={"label": "When the quota is reached"},
    )


class UserSchema(Schema):
    phone = PhoneField(required=True)
    email = fields.Email(required=True)
    first_name = fields.String(load_default="", validate=validate.Length(max=100))
    last_name = fields.String(load_default="", validate=validate.Length(max=100))
    position = fields.String(load_default="", validate=validate.Length(max=100))
    is_staff = fields.Boolean(load_default=False)


class UserEditSchema(UserSchema):
    """Staff edit a user's contacts and name; staff status is not changed here."""

    class Meta:
        exclude = ("is_staff",)

    # a user may have no e-mail (links are then passed on by hand)
    email = fields.Email(required=False, allow_none=True, load_default=None)


USER_FIELDS = ("phone", "email", "first_name", "last_name", "position")


def _user_form(form) -> dict[str, object]:
    return {k: (form.get(k) or "").strip() for k in USER_FIELDS}


async def _user_of(form) -> User | None:
    ident = form.get("id") or ""
    return await User.get_or_none(id=int(ident)) if ident.isdigit() else None


async def staff_users(ctx: Ctx) -> Response:
    """Users: create, edit, deactivate and reactivate, send an activation or a password-reset link."""
    errors: dict[str, list[str]] = {}
    link = None
    link_sent_to = None
    editing: User | None = None
    if ctx.request.method == "POST":
        form = ctx.form
        action = form.get("action")
        if action in ("resend", "edit", "deactivate", "reactivate", "reset"):
            user = await _user_of(form)
            if user is None:
                return await ctx.error(404, "There is no such user.")
            if action == "resend":
                link = await send_activation(ctx, user)
                if not link:
                    ctx.flash(ctx._("The activation link is sent to %(email)s.", email=user.email))
                    return ctx.redirect("/staff/users")
            elif action == "edit":
                editing = user
                errors = await _edit_user(ctx, user)
                if not errors:
                    ctx.flash(ctx._("The user is saved."))
                    return ctx.redirect("/staff/users")
            elif action == "deactivate":
                if user.id == ctx.user.id:
                    ctx.flash(ctx._("You cannot deactivate yourself."), "error")
                    return ctx.redirect("/staff/users")
                await deactivate(ctx, user)
                ctx.flash(ctx._("%(name)s is deactivated and signed out everywhere.", name=_name(user)))
                return ctx.redirect("/staff/users")
            elif action == "reactivate":
                await User.filter(id=user.id).update(is_active=True)
                ctx.flash(ctx._("%(name)s may sign in again.", name=_name(user)))
                return ctx.redirect("/staff/users")
            else:  # reset: staff see the link (to pass on by phone) and it is e-mailed when it can be
                if not user.is_active:
                    ctx.flash(ctx._("Reactivate the user first."), "error")
                    return ctx.redirect("/staff/users")
                link, sent = await send_link(ctx.perezvon, user, ctx.locale, reset=True)
                link_sent_to = user.email if sent else None
        else:
            raw: dict[str, object] = dict(_user_form(form))
            raw["is_staff"] = form.get("is_staff") == "on"
            try:
                loaded = UserSchema().load(raw)
            except ValidationError as exc:
                errors = flat_errors(exc.messages)
            else:
                if await User.exists(phone=loaded["phone"]):
                    errors["phone"] = ["A user with this phone already exists."]
                else:
                    # no password until the user opens the activation link
                    user = await User.create(password_hash=None, **loaded)
                    link = await send_activation(ctx, user)
                    if not link:
                        ctx.flash(
                            ctx._("The user is created; the activation link is sent to %(email)s.", email=user.email)
                        )
                        return ctx.redirect("/staff/users")
    elif (ctx.request.query_params.get("edit") or "").isdigit():
        editing = await User.get_or_none(id=int(ctx.request.query_params["edit"]))
    users = await User.all().order_by("last_name", "first_name", "id")
    creating = bool(errors) and editing is None
    return await ctx.render(
        "admin/staff_users.html",
        status_code=400 if errors else 200,
        users=users,
        errors=errors if creating else {},
        form=ctx.form if creating else {},
        editing=editing,
        edit_errors=errors if editing is not None else {},
        edit_form=(ctx.form if errors and editing is not None else {k: getattr(editing, k) or "" for k in USER_FIELDS})
        if editing is not None
        else {},
        link=link,
        link_sent_to=link_sent_to,
        reset_days=ACTIVATION_DAYS,
    )


def _name(user: User) -> str:
    return f"{user.first_name} {user.last_name}".strip() or user.phone


async def _edit_user(ctx: Ctx, user: User) -> dict[str, list[str]]:
    """Save staff's edit of a user; the errors by field (none when saved)."""
    raw = _user_form(ctx.form)
    if raw["email"] == "":
        raw["email"] = None
    try:
        loaded = UserEditSchema().load(raw)
    except ValidationError as exc:
        return flat_errors(exc.messages)
    if await User.filter(phone=loaded["phone"]).exclude(id=user.id).exists():
        return {"phone": ["Another user already has this phone."]}
    try:
        await User.filter(id=user.id).update(**loaded)
    except IntegrityError:  # the same phone saved for two users at once: the unique index decides
        return {"phone": ["Another user already has this phone."]}
    if loaded["email"] != user.email:
        # links already sent went to the old address: whoever reads it must not reset the password
        await void_links(user.id)
    return {}


async def deactivate(ctx: Ctx, user: User) -> None:
    """The user can no longer sign in: every session ends now, unused links die, API keys stop working
    (the key check wants an active user, core/access.py), grants stay for a reactivation."""
    await User.filter(id=user.id).update(is_active=False)
    await ctx.store.end_user_sessions(user.id)
    await void_links(user.id)


async def staff_projects(ctx: Ctx) -> Response:
    errors: dict[str, list[str]] = {}
    values: dict = {}
    if ctx.request.method == "POST":
        loaded, values, errors = load_form(ProjectSchema(), ctx.form, {})
        if loaded is not None:
            project = await Project.create(**loaded)
            ctx.flash(ctx._("The project is created."))
            return ctx.redirect(f"/projects/{project.id}")
    return await ctx.render(
        "admin/staff_projects.html",
        status_code=400 if errors else 200,
        fields=field_views(ProjectSchema(), values, errors, ctx.locale),
        errors=errors,
    )


async def staff_connections(ctx: Ctx) -> Response:
    errors: dict[str, list[str]] = {}
    form = ctx.form or {}
    if ctx.request.method == "POST":
        domain = clean_domain(form.get("domain") or "")
        project = (
            await Project.get_or_none(id=int(form.get("project_id") or 0))
            if (form.get("project_id") or "").isdigit()
            else None
        )
        if project is None:
            errors["project_id"] = ["Choose a project."]
        if not DOMAIN.match(domain):
            errors["domain"] = ["Not a domain name."]
        elif await domains_of_others([domain]):
            errors["domain"] = ["Another connection already has this domain."]
        if not errors:
            try:
                connection = await Connection.create(
                    project=project, domain=domain, name=(form.get("name") or "").strip()[:200] or domain
                )
            except IntegrityError:  # taken after the check above: the unique index decided
                errors["domain"] = ["Another connection already has this domain."]
            else:
                ctx.flash(ctx._("The connection is created. Set it up tab by tab."))
                return ctx.redirect(f"/connections/{connection.id}/settings/general")
    return await ctx.render(
        "admin/staff_connections.html",
        status_code=400 if errors else 200,
        projects=await Project.all().order_by("name"),
        errors=errors,
        form=form,
        selected=ctx.request.query_params.get("project"),
    )


async def staff_grants(ctx: Ctx) -> Response:
    errors: dict[str, list[str]] = {}
    form = ctx.form or {}
    if ctx.request.method == "POST":
        if form.get("action") == "delete":
            await AccessGrant.filter(id=int(form.get("id") or 0)).delete()
            ctx.flash(ctx._("The grant is removed."))
            return ctx.redirect("/staff/grants")
        user = (
            await User.get_or_none(id=int(form.get("user_id") or 0)) if (form.get("user_id") or "").isdigit() else None
        )
        target = form.get("target") or ""
        level = form.get("level")
        kind, _, ident = target.partition(":")
        if user is None:
            errors["user_id"] = ["Choose a user."]
        if level not in GrantLevel.ORDER:
            errors["level"] = ["Choose a level."]
        project_id = connection_id = None
        if kind == "p" and ident.isdigit() and await Project.exists(id=int(ident)):
            project_id = int(ident)
        elif kind == "c" and ident.isdigit() and await Connection.exists(id=int(ident)):
            connection_id = int(ident)
        else:
            errors["target"] = ["Choose a project or a connection."]
        if not errors:
            await AccessGrant.filter(user_id=user.id, project_id=project_id, connection_id=connection_id).delete()
            await AccessGrant.create(
                user=user,
                project_id=project_id,
                connection_id=connection_id,
                level=level,
                may_see_contacts=form.get("may_see_contacts") == "1",
            )
            ctx.flash(ctx._("The grant is saved."))
            return ctx.redirect("/staff/grants")
    grants = await AccessGrant.all().prefetch_related("user", "project", "connection").order_by("user_id", "id")
    return await ctx.render(
        "admin/staff_grants.html",
        status_code=400 if errors else 200,
        grants=grants,
        users=await User.all().order_by("last_name", "id"),
        projects=await Project.all().order_by("name"),
        connections=await Connection.all().order_by("domain"),
        errors=errors,
        form=form,
    )
