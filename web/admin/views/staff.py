"""Staff pages (docs/admin.md#who-may-do-what): users, projects, connections and grants."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from starlette.responses import Response

from perezvon.core.domains import domains_of_others
from perezvon.core.models import AccessGrant, Connection, GrantLevel, Project, User
from perezvon.core.schemas import PhoneField
from perezvon.web.admin.forms import field_views, flat_errors, load_form
from perezvon.web.admin.framework import Ctx
from perezvon.web.admin.views.auth import send_activation
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


class UserSchema(Schema):
    phone = PhoneField(required=True)
    email = fields.Email(required=True)
    first_name = fields.String(load_default="", validate=validate.Length(max=100))
    last_name = fields.String(load_default="", validate=validate.Length(max=100))
    position = fields.String(load_default="", validate=validate.Length(max=100))
    is_staff = fields.Boolean(load_default=False)


async def staff_users(ctx: Ctx) -> Response:
    errors: dict[str, list[str]] = {}
    link = None
    if ctx.request.method == "POST":
        form = ctx.form
        if form.get("action") == "resend":
            user = await User.get_or_none(id=int(form.get("id") or 0))
            if user is not None:
                link = await send_activation(ctx, user)
                if not link:
                    ctx.flash(ctx._("The activation link is sent to %(email)s.", email=user.email))
                    return ctx.redirect("/staff/users")
        else:
            raw = {k: (form.get(k) or "").strip() for k in ("phone", "email", "first_name", "last_name", "position")}
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
    users = await User.all().order_by("last_name", "first_name", "id")
    return await ctx.render(
        "admin/staff_users.html",
        status_code=400 if errors else 200,
        users=users,
        errors=errors,
        form=ctx.form if errors else {},
        link=link,
    )


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
            connection = await Connection.create(
                project=project, domain=domain, name=(form.get("name") or "").strip()[:200] or domain
            )
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
            await AccessGrant.create(user=user, project_id=project_id, connection_id=connection_id, level=level)
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
