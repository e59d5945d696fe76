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

#: site-script event -> the goal identifier to create in Metrika ("JavaScript event" goals)
GOALS: dict[str, str] = {
    "widget_shown": "perezvon_widget_shown",
    "widget_opened": "perezvon_widget_opened",
    "widget_lead": "perezvon_widget_lead",
    "leadgen_shown": "perezvon_leadgen_shown",
    "leadgen_lead": "perezvon_leadgen_lead",
    "offhours_lead": "perezvon_offhours_lead",
}
COUNTER_ID = re.compile(r"\d{1,12}")


class MetrikaSettings(Schema):
    counter_id = fields.String(required=True, metadata={
        "label": "Counter id", "help": "The digits of ym(12345678, 'init', …) in the counter's code"})

    @validates("counter_id")
    def _digits(self, value: str, **_: Any) -> None:
        if not COUNTER_ID.fullmatch(value.strip()):
            raise ValidationError("The counter id is digits only, e.g. 12345678.")


def _goals_help() -> str:
    return "\n".join(f"  {GOALS[event]}" for event in GOALS)


class Metrika(Integration):
    key = "metrika"
    title = "Yandex Metrika"
    description = (
        "In Metrika create goals of type \"JavaScript event\" with the identifiers below; the counter must be on "
        "the site.\n" + _goals_help())
    settings_schema = MetrikaSettings
    client_script: ClassVar[Path | None] = Path(__file__).with_name("static") / "metrika.js"

    def client_events(self, settings: dict[str, Any]) -> dict[str, Any]:
        return {"counter": int(settings["counter_id"].strip()), "goals": dict(GOALS)}
