"""Sign in, sign out, activation links, the profile and its API keys (docs/admin.md#security)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from starlette.responses import RedirectResponse, Response

from perezvon.core.access import create_api_key
from perezvon.core.auth import MIN_PASSWORD_LENGTH, hash_password, hash_password_off_loop, verify_password_off_loop
from perezvon.core.models import AccessGrant, ActivationToken, ApiKey, User
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.registry import Notification
from perezvon.web.admin.framework import Ctx, safe_next
from perezvon.web.admin.i18n import LANG_COOKIE, LOCALES, plugin_text
from perezvon.web.admin.sessions import LoginThrottle, RecoveryThrottle

log = logging.getLogger("perezvon.admin")

ACTIVATION_DAYS = 3
#: a link asked for on the "forgot password" form: it goes to a mailbox that may be read later by others
RECOVERY_HOURS = 1
#: verified against when the phone is unknown, so a wrong phone costs as long as a wrong password
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def client_ip(ctx: Ctx) -> str:
    return ctx.request.client.host if ctx.request.client else "?"


async def login(ctx: Ctx) -> Response:
    await ctx.ensure_session()
    next_url = safe_next(ctx.request.query_params.get("next") or (ctx.form and ctx.form.get("next")))
    if ctx.request.method == "GET":
        if ctx.session.user_id:
            return ctx.redirect(next_url)
        return await ctx.render("admin/login.html", next_url=next_url, phone="", error=None)
    phone_text = (ctx.form.get("phone") or "").strip()
    password = ctx.form.get("password") or ""
    throttle = LoginThrottle(ctx.perezvon.redis)
    try:
        phone = normalise(phone_text)
    except InvalidPhone:
        phone = phone_text[:40]
    # the try is counted before the password is checked, so tries sent at once cannot all be checked
    wait = await throttle.reserve(phone, client_ip(ctx))
    if wait:
        return await ctx.render(
            "admin/login.html",
            status_code=429,
            next_url=next_url,
            phone=phone_text,
            error=ctx._("Too many failed attempts. Try again in %(minutes)s min.", minutes=_minutes(wait)),
        )
    user = await User.get_or_none(phone=phone)
    ok = await verify_password_off_loop(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.is_active:
        return await ctx.render(
            "admin/login.html",
            status_code=400,
            next_url=next_url,
            phone=phone_text,
            error=ctx._("Wrong phone or password."),
        )
    await throttle.succeeded(phone, client_ip(ctx))
    await User.filter(id=user.id).update(last_login_at=dt.datetime.now(dt.UTC))
    # a new session id at the new privilege level: an id planted before login is now worthless
    ctx.session = await ctx.store.rotate(ctx.session, {"user_id": user.id})
    return ctx.redirect(next_url)


def _minutes(seconds: int) -> int:
    return max(1, (seconds + 59) // 60)


async def logout(ctx: Ctx) -> Response:
    if ctx.session is not None:
        await ctx.store.delete(ctx.session)
    return ctx.redirect("/login")


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def _valid_token(raw: str) -> ActivationToken | None:
    token = await ActivationToken.get_or_none(token_hash=_token_hash(raw), used_at=None).prefetch_related("user")
    # a deactivated user's links are dead too: a link must not bring an account back
    if token is None or token.expires_at < dt.datetime.now(dt.UTC) or not token.user.is_active:
        return None
    return token


async def void_links(user_id: int) -> None:
    """Every unused link of the user stops working (a new link, a new e-mail, deactivation)."""
    await ActivationToken.filter(user_id=user_id, used_at=None).update(used_at=dt.datetime.now(dt.UTC))


async def activate(ctx: Ctx) -> Response:
    await ctx.ensure_session()
    raw = ctx.request.path_params["token"]
    token = await _valid_token(raw)
    if token is None:
        return await ctx.error(
            404, "This link is not valid any more. Ask for a new one with “Forgot password?” or ask an administrator."
        )
    if ctx.request.method == "GET":
        return await ctx.render("admin/activate.html", person=token.user, errors={})
    password = ctx.form.get("password") or ""
    errors: dict[str, list[str]] = {}
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = [ctx._("At least %(n)s characters.", n=MIN_PASSWORD_LENGTH)]
    elif password != (ctx.form.get("password2") or ""):
        errors["password2"] = [ctx._("The passwords differ.")]
    if errors:
        return await ctx.render("admin/activate.html", status_code=400, person=token.user, errors=errors)
    now = dt.datetime.now(dt.UTC)
    used = await ActivationToken.filter(id=token.id, used_at=None).update(used_at=now)
    if not used:  # the same link opened twice at once: only one may set the password
        return await ctx.error(
            404, "This link is not valid any more. Ask for a new one with “Forgot password?” or ask an administrator."
        )
    # is_active is left alone: only staff deactivate and reactivate (a deactivated user's link is refused above)
    await User.filter(id=token.user_id).update(password_hash=await hash_password_off_loop(password), last_login_at=now)
    ctx.session = await ctx.store.rotate(ctx.session, {"user_id": token.user_id})
    # a link sent to reset a password: whoever was signed in with the old one is signed out
    await ctx.store.end_user_sessions(token.user_id, keep=ctx.session)
    return ctx.redirect("/")


async def send_activation(ctx: Ctx, user: User) -> str | None:
    """Make a one-time link and e-mail it through the registered notifiers (the core's path).

    Returns the link when no notifier could send it, so staff can pass it on by hand.
    """
    link, sent = await send_link(ctx.perezvon, user, ctx.locale)
    return None if sent else link


async def send_link(
    perezvon, user: User, locale: str, *, reset: bool = False, valid_for: dt.timedelta | None = None
) -> tuple[str, bool]:
    """A new one-time link to set the user's password, e-mailed when the user has an e-mail.

    The same link serves a new account (``reset=False``) and a password reset; the e-mail
    says which. Older unused links of the user stop working: only the newest one counts.
    Returns the link and whether some notifier sent it.
    """
    raw = secrets.token_urlsafe(32)
    expires = dt.datetime.now(dt.UTC) + (valid_for or dt.timedelta(days=ACTIVATION_DAYS))
    await void_links(user.id)
    await ActivationToken.create(user=user, token_hash=_token_hash(raw), expires_at=expires)
    link = f"{perezvon.settings.public_url}/activate/{raw}"
    if not user.email:
        return link, False
    notification = Notification(
        kind="activation",
        recipients=(user.email,),
        subject_id=str(user.id),
        data={
            "user": {"first_name": user.first_name, "phone": user.phone, "email": user.email},
            "link": link,
            "expires_at": expires.isoformat(),
            "locale": locale,
            "reset": reset,
        },
    )
    return link, bool(await send_now(perezvon, notification))


#: the recovery e-mails being sent; kept so the tasks are not collected before they finish
_recovery_tasks: set[asyncio.Task[None]] = set()


async def _send_recovery(perezvon, phone: str, locale: str) -> None:
    try:
        user = await User.get_or_none(phone=phone, is_active=True)
        if user is not None and user.email:
            await send_link(perezvon, user, locale, reset=True, valid_for=dt.timedelta(hours=RECOVERY_HOURS))
    except Exception:  # nobody waits for this task: its failure is only logged
        log.exception("the recovery link for %s could not be sent", phone)


async def forgot(ctx: Ctx) -> Response:
    """The "Forgot password?" form: a one-time link to the e-mail on file (docs/admin.md#security).

    The answer is the same whether the phone has an account or not, and the account is
    looked up and the e-mail sent after the answer, so neither the words nor the time
    of the answer tell whether the phone is registered.
    """
    await ctx.ensure_session()
    if ctx.request.method == "GET":
        return await ctx.render("admin/forgot.html", phone="", error=None, done=False)
    phone_text = (ctx.form.get("phone") or "").strip()
    try:
        phone = normalise(phone_text)
    except InvalidPhone:
        return await ctx.render(
            "admin/forgot.html",
            status_code=400,
            phone=phone_text[:40],
            error=ctx._("Enter the mobile phone you sign in with, e.g. +7 916 123-45-67."),
            done=False,
        )
    wait = await RecoveryThrottle(ctx.perezvon.redis).reserve(phone, client_ip(ctx))
    if wait:
        return await ctx.render(
            "admin/forgot.html",
            status_code=429,
            phone=phone_text,
            error=ctx._("Too many requests for a link. Try again in %(minutes)s min.", minutes=_minutes(wait)),
            done=False,
        )
    task = asyncio.create_task(_send_recovery(ctx.perezvon, phone, ctx.locale))
    _recovery_tasks.add(task)
    task.add_done_callback(_recovery_tasks.discard)
    return await ctx.render("admin/forgot.html", phone=phone_text, error=None, done=True, hours=RECOVERY_HOURS)


async def send_now(perezvon, notification: Notification) -> int:
    """Send a notification that is not about a call through every registered notifier, now.

    Activation links must not wait in Redis (only their hash is stored), so
    these are sent from the request rather than queued. Returns how many sent it.
    """
    sent = 0
    for key, notifier in perezvon.host.registry.notifiers.items():
        try:
            await notifier.send(notification)
            sent += 1
        except Exception as exc:  # one broken channel must not stop the others
            log.warning("notifier %s could not send %s: %s", key, notification.kind, exc)
    return sent


async def profile(ctx: Ctx) -> Response:
    errors: dict[str, list[str]] = {}
    status_code = 200
    new_key = None
    if ctx.request.method == "POST":
        action = ctx.form.get("action")
        if action == "save":
            values = {name: (ctx.form.get(name) or "").strip() for name in ("first_name", "last_name", "position")}
            for name, value in values.items():
                if len(value) > 100:
                    errors[name] = [ctx._("At most %(n)s characters.", n=100)]
            if not errors:
                await User.filter(id=ctx.user.id).update(**values)
                ctx.flash(ctx._("Saved."))
                return ctx.redirect("/profile")
        elif action == "create_key":
            _, new_key = await create_api_key(ctx.user, ctx.form.get("name") or "")
        elif action == "revoke_key":
            key_id = ctx.form.get("key_id") or ""
            if key_id.isdigit():
                await ApiKey.filter(id=int(key_id), user_id=ctx.user.id, revoked_at=None).update(
                    revoked_at=dt.datetime.now(dt.UTC)
                )
            ctx.flash(ctx._("The key is revoked."))
            return ctx.redirect("/profile")
        elif action == "password":
            current, password = ctx.form.get("current") or "", ctx.form.get("password") or ""
            # the current password is guessed here as on the sign-in form: the same counters limit both
            throttle = LoginThrottle(ctx.perezvon.redis)
            wait = await throttle.reserve(ctx.user.phone, client_ip(ctx))
            if wait:
                errors["current"] = [
                    ctx._("Too many wrong passwords. Try again in %(minutes)s min.", minutes=_minutes(wait))
                ]
                status_code = 429
            elif not await verify_password_off_loop(ctx.user.password_hash, current):
                errors["current"] = [ctx._("Wrong password.")]
            else:
                await throttle.succeeded(ctx.user.phone, client_ip(ctx))
                if len(password) < MIN_PASSWORD_LENGTH:
                    errors["password"] = [ctx._("At least %(n)s characters.", n=MIN_PASSWORD_LENGTH)]
                else:
                    await User.filter(id=ctx.user.id).update(password_hash=await hash_password_off_loop(password))
                    ctx.session = await ctx.store.rotate(ctx.session, {"user_id": ctx.user.id})
                    # whoever knew the old password is signed out everywhere else; this browser stays in
                    await ctx.store.end_user_sessions(ctx.user.id, keep=ctx.session)
                    ctx.flash(ctx._("The password is changed. You are signed out everywhere else."))
                    ctx.session_dirty = True
                    return ctx.redirect("/profile")
        elif ctx.form.get("panel"):  # a button of a notifier's profile panel (e.g. linking a Telegram chat)
            notifier = ctx.perezvon.host.registry.notifiers.get(ctx.form.get("panel") or "")
            panel = getattr(notifier, "profile_panel", None)
            if notifier is None or panel is None or action not in panel.actions:
                return await ctx.error(404, "There is no such page.")
            for kind, message in await notifier.profile_panel_action(ctx.user.id, action, dict(ctx.form), ctx.locale):
                ctx.flash(message, "error" if kind == "error" else "ok")
            return ctx.redirect("/profile")
        elif action == "sign_out_everywhere":
            await ctx.store.end_user_sessions(ctx.user.id)
            if ctx.session is not None:
                await ctx.store.delete(ctx.session)
            return ctx.redirect("/login")
        await ctx.user.refresh_from_db()
    keys = await ApiKey.filter(user_id=ctx.user.id).order_by("-created_at")
    return await ctx.render(
        "admin/profile.html",
        my_access=await access_list(ctx.user),
        status_code=status_code if status_code != 200 else (400 if errors else 200),
        errors=errors,
        keys=keys,
        new_key=new_key,
        form=ctx.form if errors else None,
        panels=await profile_panels(ctx),
    )


async def profile_panels(ctx: Ctx) -> list[dict[str, Any]]:
    """The notifiers' own panels on the profile (``Notifier.profile_panel``); one that fails is left out."""
    panels = []
    for key, notifier in sorted(ctx.perezvon.host.registry.notifiers.items()):
        if notifier.profile_panel is None:
            continue
        try:
            data = await notifier.profile_panel_data(ctx.user.id, ctx.locale)
        except Exception:
            log.exception("the profile panel of %s failed for user %s", key, ctx.user.id)
            continue
        owner = ctx.perezvon.host.registry.owner[("notifier", key)]
        panels.append(
            {
                "key": key,
                "template": f"{owner}/{notifier.profile_panel.template}",
                "data": data,
                "t": plugin_text(notifier, ctx.locale),
                "action_url": "/profile",
                "can_edit": True,
            }
        )
    return panels


async def language(ctx: Ctx) -> Response:
    code = ctx.request.path_params["code"]
    response = RedirectResponse(safe_next(ctx.request.query_params.get("next")), status_code=303)
    if code in LOCALES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, path="/", samesite="lax", httponly=True)
    return response


async def access_list(user: User) -> list[dict[str, object]]:
    """What the user may reach, for the profile: each project or connection with its level."""
    grants = await AccessGrant.filter(user_id=user.id).prefetch_related("project", "connection__project")
    rows: list[dict[str, object]] = []
    for grant in grants:
        if grant.project is not None:
            rows.append({"kind": "project", "name": grant.project.name, "project": None, "level": grant.level})
        elif grant.connection is not None:
            connection = grant.connection
            rows.append(
                {
                    "kind": "connection",
                    "name": connection.name or connection.domain,
                    "domain": connection.domain,
                    "project": connection.project.name,
                    "id": connection.id,
                    "level": grant.level,
                }
            )
    return sorted(rows, key=lambda row: (row["kind"] != "project", str(row["project"] or ""), str(row["name"])))
