"""The callback widget as an application (docs/site-script.md#the-widget)."""
from __future__ import annotations

from pathlib import Path

from perezvon.plugins.widget.schemas import WidgetSettings

from perezvon.api import Application, LeadSource

KEY = "widget"
LEAD_SOURCE = LeadSource(key=KEY, title="Виджет обратного звонка", calltouch_code=11)


class Widget(Application):
    key = KEY
    title = "Виджет обратного звонка"
    description = ("Форма обратного звонка, которая появляется по времени, при уходе или прокрутке. "
                   "A callback form that pops up by time, exit intent or scroll.")
    lead_source = KEY
    settings_schema = WidgetSettings
    client_script = Path(__file__).with_name("static") / "widget.js"
