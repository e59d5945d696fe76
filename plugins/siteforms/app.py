"""Site forms as an application: switched on and off per connection like the widget (docs/siteforms.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perezvon.api import AdminPanel, Application, Connection, LeadSource, PanelMessage
from perezvon.plugins.siteforms.schemas import SiteFormsAppSettings, SiteFormsSettings

if TYPE_CHECKING:
    from perezvon.api import Settings

#: the key of both the lead source and the application
KEY = "siteforms"

#: the visitor filled in the site's own form, which offers none of the connection's choices: the
#: intake takes these leads with an empty office/department even where they are required
LEAD_SOURCE = LeadSource(key=KEY, title="Формы сайта", calltouch_code=15, visitor_chooses=False)


class SiteForms(Application):
    """Nothing runs on the site: the site's own forms e-mail the connection's technical address.

    While the application is switched off for a connection (or the connection
    is), mail to its technical address is refused at RCPT, so the sender gets
    a bounce instead of a silent loss.
    """

    key = KEY
    #: English msgids; Russian in locales/ru (the admin finds that catalog by convention)
    title = "Site forms"
    description = "Site-form e-mails sent to the technical address become callbacks."
    lead_source = KEY
    settings_schema = SiteFormsAppSettings
    client_script = None
    #: the technical address, the test e-mail and the e-mails kept without a callback (panel.py)
    # the kept e-mails' senders and subjects may be the client's address or phone
    admin_panel = AdminPanel("panel.html", actions=("send_test",), contact_keys=("kept",))

    def __init__(self, settings: dict[str, Any] | None = None, core_settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else SiteFormsSettings().load({})
        self.secret = core_settings.secret_key if core_settings else ""

    async def admin_panel_data(self, connection: Connection, locale: str) -> dict[str, Any]:
        from perezvon.plugins.siteforms.panel import panel_data  # it needs this module: imported late

        return await panel_data(connection, domain=self.settings["domain"], locale=locale)

    async def admin_panel_action(
        self, connection: Connection, action: str, form: dict[str, str], locale: str
    ) -> list[PanelMessage]:
        from perezvon.plugins.siteforms.panel import panel_action

        return await panel_action(connection, action, settings=self.settings, secret=self.secret, locale=locale)
