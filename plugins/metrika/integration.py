"""Yandex Metrika (docs/integrations.md): JS-event goals reached in the visitor's browser.

Nothing is sent from the server: Metrika counts goals on the page, where its
counter knows the visit. The site script's event bus tells this plugin's
client script what happened; it calls ``ym(counter, 'reachGoal', id)``.

With an OAuth token (optional, secret) the settings can be checked: the
Management API's ``GET /management/v1/counter/{id}`` says whether the counter
exists and the token may read it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates

from perezvon.api import CheckFailed, DeliveryError, HttpPush, Integration

#: a declared site event's goal in Metrika is this prefix and the event's name
#: ("widget_lead" -> "perezvon_widget_lead"); customers' goals are set up by these names
GOAL_PREFIX = "perezvon_"


COUNTER_ID = re.compile(r"\d{1,12}")
#: the Management API, asked only by :meth:`Metrika.check`
API_URL = "https://api-metrika.yandex.net"


class MetrikaSettings(Schema):
    counter_id = fields.String(
        required=True,
        metadata={"label": "Counter id", "help": "The digits of ym(12345678, 'init', …) in the counter's code"},
    )

    @validates("counter_id")
    def _digits(self, value: str, **_: Any) -> None:
        if not COUNTER_ID.fullmatch(value.strip()):
            raise ValidationError("The counter id is digits only, e.g. 12345678.")

    oauth_token = fields.String(
        load_default="",
        metadata={
            "secret": True,
            "label": "OAuth token for the check",
            "help": "Optional: a Yandex token with metrika:read access; with it the counter is checked on saving",
        },
    )
    api_url = fields.String(
        load_default=API_URL,
        validate=validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"label": "Management API URL"},
    )


class Metrika(Integration):
    key = "metrika"
    title = "Yandex Metrika"
    summary = "Site events as Yandex Metrika goals."
    description = (
        'In Metrika create goals of type "JavaScript event" named perezvon_ and the site event\'s name '
        "(perezvon_widget_lead, perezvon_leadgen_lead, perezvon_offhours_lead …; the enabled apps' events are "
        "listed below); the counter must be on the site."
    )
    settings_schema = MetrikaSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "metrika.js"

    def __init__(self) -> None:
        self.http = HttpPush()

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        # the goals are the page's declared site events (Perezvon.events), named by GOAL_PREFIX
        return {"counter": int(settings["counter_id"].strip()), "prefix": GOAL_PREFIX}

    async def check(self, settings: dict[str, Any]) -> None:
        """The counter must exist and the token must read it; without a token there is nothing to ask."""
        token = settings.get("oauth_token", "").strip()
        if not token:
            return
        counter = settings["counter_id"].strip()
        url = f"{settings['api_url'].rstrip('/')}/management/v1/counter/{counter}"
        try:
            await self.http.send("GET", url, headers={"Authorization": f"OAuth {token}"}, secrets=[token])
        except DeliveryError as refused:
            if refused.status == 401:
                raise CheckFailed(
                    {"oauth_token": ["Yandex does not accept this OAuth token: it is wrong or has expired."]}
                ) from None
            if refused.status == 403:
                raise CheckFailed(
                    {
                        "counter_id": [
                            (
                                "This token may not read counter %(counter)s: grant its account "
                                "access to the counter, or check the number.",
                                {"counter": counter},
                            )
                        ]
                    }
                ) from None
            if refused.status in (400, 404):
                raise CheckFailed(
                    {"counter_id": [("Yandex Metrika has no counter %(counter)s.", {"counter": counter})]}
                ) from None
            raise
