"""What the mail plugin adds to ``perezvon demo``: a recipient, so demo calls produce mail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from perezvon.api import DemoStep, NotificationRecipient
from perezvon.plugins.mail.notifier import outbox_path

if TYPE_CHECKING:
    from perezvon.api import Connection, Settings

DEMO_RECIPIENT = "demo@example.com"


def demo_step(settings: Mapping[str, Any], core_settings: Settings | None) -> DemoStep:
    async def add_demo_recipient(connection: Connection) -> dict[str, Any]:
        if settings["relay_host"]:
            # a real relay would try to deliver to example.com and bounce: add no one
            return {"mail_relay": f"{settings['relay_host']}:{settings['relay_port']}"}
        if not await NotificationRecipient.exists(
            connection_id=connection.id, email=DEMO_RECIPIENT, office_id__isnull=True, department_id__isnull=True
        ):
            await NotificationRecipient.create(connection=connection, email=DEMO_RECIPIENT)
        outbox = outbox_path(settings, core_settings)
        outbox.mkdir(parents=True, exist_ok=True)  # so the path printed can be opened before the first call
        return {"outbox": str(outbox)}

    return add_demo_recipient
