"""Lead generators as an application (docs/site-script.md#the-lead-generator)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from perezvon.plugins.leadgen.schemas import MAX_PER_SESSION, LeadgenSettings

from perezvon.api import Application, LeadSource

KEY = "leadgen"
LEAD_SOURCE = LeadSource(key=KEY, title="Генератор лидов", calltouch_code=12)


class Leadgen(Application):
    key = KEY
    title = "Генератор лидов"
    description = ("Промо-окна с предложением: обложка, шторки с формой и таймер звонка. "
                   "Promotional pop-ups: a cover, curtains with the form, a call timer.")
    lead_source = KEY
    settings_schema = LeadgenSettings
    client_script = Path(__file__).with_name("static") / "leadgen.js"

    def client_config(self, connection, settings: dict[str, Any]) -> dict[str, Any]:
        # switched-off generators never reach the browser
        return {"max_per_session": MAX_PER_SESSION,
                "generators": [g for g in settings["generators"] if g["enabled"]]}
