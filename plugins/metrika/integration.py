"""Yandex Metrika (SPEC S5): JS-event goals reached in the visitor's browser.

Nothing is sent from the server: Metrika counts goals on the page, where its
counter knows the visit. The site script's event bus tells this plugin's
client script what happened; it calls ``ym(counter, 'reachGoal', id)``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validates

from perezvon.api import Integration

#: a declared site event's goal in Metrika is this prefix and the event's name
#: ("widget_lead" -> "perezvon_widget_lead"); customers' goals are set up by these names
GOAL_PREFIX = "perezvon_"


def goal_id(event: str) -> str:
    """The Metrika goal identifier of a site event (docs/integrations.md)."""
    return GOAL_PREFIX + event


COUNTER_ID = re.compile(r"\d{1,12}")


class MetrikaSettings(Schema):
    counter_id = fields.String(required=True, metadata={
        "label": "Номер счётчика / Counter id",
        "help": "Цифры из кода счётчика: ym(12345678, 'init', …) / The digits of ym(12345678, 'init', …)"})

    @validates("counter_id")
    def _digits(self, value: str, **_: Any) -> None:
        if not COUNTER_ID.fullmatch(value.strip()):
            raise ValidationError("Номер счётчика — только цифры, например 12345678 / "
                                  "The counter id is digits only, e.g. 12345678.")


class Metrika(Integration):
    key = "metrika"
    title = "Яндекс Метрика / Yandex Metrika"
    description = (
        "В Метрике создайте цели типа «JavaScript-событие»: идентификатор — perezvon_ и имя события сайта "
        "(perezvon_widget_lead, perezvon_leadgen_lead, perezvon_offhours_lead …; события включённых приложений "
        "перечислены ниже); счётчик должен стоять на сайте.\n"
        "In Metrika create goals of type \"JavaScript event\" named perezvon_ and the site event's name "
        "(perezvon_widget_lead, perezvon_leadgen_lead, perezvon_offhours_lead …; the enabled apps' events are "
        "listed below); the counter must be on the site.")
    settings_schema = MetrikaSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "metrika.js"

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        # the goals are the page's declared site events (Perezvon.events), named by GOAL_PREFIX
        return {"counter": int(settings["counter_id"].strip()), "prefix": GOAL_PREFIX}
