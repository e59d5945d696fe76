"""Site forms as an application: switched on and off per connection like the widget (docs/siteforms.md)."""

from __future__ import annotations

from perezvon.api import Application, LeadSource
from perezvon.plugins.siteforms.schemas import SiteFormsAppSettings

#: the key of both the lead source and the application
KEY = "siteforms"

LEAD_SOURCE = LeadSource(key=KEY, title="Формы сайта", calltouch_code=15)


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
