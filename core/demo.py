"""``perezvon demo``: an idempotent demo company, site and staff user."""

from __future__ import annotations

import os
import secrets
from typing import Any

from perezvon.core import enablement
from perezvon.core.app import Perezvon
from perezvon.core.auth import hash_password
from perezvon.core.models import Connection, OperatorNumber, Project, User

DEMO_PHONE = "+79990000001"
DEMO_DOMAIN = "localhost"
ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}


def _demo_password(app: Perezvon) -> str:
    """Generated once and kept in the data dir (0600), so every run prints the same one."""
    path = app.settings.data_dir / "demo_password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password)
    return password


async def _demo_api_key(app: Perezvon, user: User) -> str:
    """The demo staff user's read-API key: kept in the data dir (0600) like the password, so every
    run prints the same key; only its hash is in the database."""
    from perezvon.core.access import API_KEY_PREFIX, hash_api_key
    from perezvon.core.models import ApiKey

    path = app.settings.data_dir / "demo_api_key"
    raw = path.read_text().strip() if path.exists() else ""
    if not raw.startswith(API_KEY_PREFIX):
        raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(raw)
    if not await ApiKey.exists(key_hash=hash_api_key(raw), revoked_at=None):
        await ApiKey.create(user=user, name="demo", prefix=raw[:12], key_hash=hash_api_key(raw))
    return raw


async def seed_demo(app: Perezvon) -> dict[str, Any]:
    password = _demo_password(app)
    user = await User.get_or_none(phone=DEMO_PHONE)
    if user is None:
        user = await User.create(
            phone=DEMO_PHONE,
            email="demo@example.com",
            first_name="Демо",
            last_name="Администратор",
            position="Администратор",
            is_staff=True,
            password_hash=hash_password(password),
        )
    project, _ = await Project.get_or_create(
        name="Демо-компания",
        defaults=dict(
            legal_entity="ООО «Демо»",
            payment_type="postpaid",
            industry="Автомобили",
            city="Москва",
            manager_name="Ирина Петрова",
            manager_phone="+74950000000",
            manager_email="manager@example.com",
        ),
    )
    connection = await Connection.get_or_none(domain=DEMO_DOMAIN)
    if connection is None:
        connection = await Connection.create(
            project=project,
            domain=DEMO_DOMAIN,
            extra_domains=["127.0.0.1"],
            name="Демо-сайт",
            specialization="Продажа автомобилей",
            schedule=ROUND_THE_CLOCK,
        )
    if not await OperatorNumber.exists(connection_id=connection.id):
        await OperatorNumber.create(connection=connection, phone="+74951234567")
    # every application, and the integrations that need no account details (a counter id, a key), are
    # switched on -- once: a plugin someone switched off or set up since is left as it is
    set_up = await enablement.enablements_of(connection)
    for kind, plugins in (
        (enablement.APPLICATION, app.host.registry.applications),
        (enablement.INTEGRATION, app.host.registry.integrations),
    ):
        for key, plugin in plugins.items():
            defaults = enablement.default_settings(plugin)
            if (kind, key) not in set_up and defaults is not None:
                await enablement.enable(connection, kind, key, defaults)
    public = app.settings.public_url
    extras: dict[str, Any] = {}
    for step in app.host.demo_steps():  # e.g. the site-forms plugin's technical e-mail address
        extras.update(await step(connection) or {})
    return {
        "staff_phone": user.phone,
        "staff_password": password,
        "project_id": project.id,
        "connection_id": connection.id,
        "site_token": connection.token,
        "admin_url": f"{public}/",
        "lead_url": f"{public}/api/v1/leads",
        "api_key": await _demo_api_key(app, user),
        **extras,
    }


async def demo_site_url(app: Perezvon) -> str | None:
    """The sample page carrying the demo site's snippet (web/site.py), once ``perezvon demo`` made it."""
    connection = await Connection.get_or_none(domain=DEMO_DOMAIN)
    return f"{app.settings.public_url}/site/try?token={connection.token}" if connection else None
