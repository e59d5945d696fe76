"""A parsed form + what we know about the site -> the lead to submit. Pure functions."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import parse_qsl, urlsplit

from perezvon.plugins.siteforms.parser import ParsedForm

UTM_KEYS = ("source", "medium", "campaign", "content", "term")

#: links on the site's own domain that are not the page the visitor was on: the CMS's admin
#: (1C-Bitrix puts a link to the form result in every notification), log-in pages
_ADMIN_PATH = re.compile(
    r"^/(bitrix/admin|bitrix/tools|wp-admin|wp-login\.php|manager|administrator|admin|connectors)(/|$|\?)", re.I
)


@dataclasses.dataclass(frozen=True)
class SiteProfile:
    """What matching needs to know about the connection a technical address belongs to."""

    connection_id: int
    token: str
    domains: tuple[str, ...]
    #: (office id, alternative name) of the active offices that have one
    offices: tuple[tuple[int, str], ...] = ()
    #: (department id, name) of the active departments
    departments: tuple[tuple[int, str], ...] = ()
    #: the connection's own operator numbers: found in a form, they are the site's, not the visitor's
    own_phones: frozenset[str] = frozenset()
    #: the connection's name: a From header's display name that is the site's name is not a visitor's
    name: str = ""


@dataclasses.dataclass(frozen=True)
class LeadDraft:
    phone: str | None
    name: str
    office_id: int | None
    department_id: int | None
    page_url: str
    utm: dict[str, str]

    def payload(self, site: SiteProfile, extra: dict) -> dict:
        """The body :meth:`perezvon.api.LeadIntake.submit` takes."""
        return {
            "token": site.token,
            "phone": self.phone,
            "source": "siteforms",
            # the site's own form asked for the visitor's consent before it e-mailed us
            "consent": True,
            "name": self.name,
            "office_id": self.office_id,
            "department_id": self.department_id,
            "page_url": self.page_url,
            "utm": {key: self.utm.get(key, "") for key in UTM_KEYS},
            "extra": extra,
        }


def _on_domains(url: str, domains: tuple[str, ...]) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return any(host == d or host.endswith("." + d) for d in domains)


def page_url(form: ParsedForm, domains: tuple[str, ...]) -> str:
    """The form's page field, else the first link on the site's own domains that is not its admin."""
    if form.page_url:
        return form.page_url[:2048]
    for url in form.urls:
        if _on_domains(url, domains) and not _ADMIN_PATH.match(urlsplit(url).path or "/"):
            return url[:2048]
    return ""


def _utm(form: ParsedForm, page: str) -> dict[str, str]:
    """Form fields first, then the page URL's query, then anything else in the message."""
    try:
        query = dict(parse_qsl(urlsplit(page).query)) if page else {}
    except ValueError:
        query = {}
    utm = {}
    for key in UTM_KEYS:
        value = form.utm.get(key) or query.get(f"utm_{key}", "")[:256] or form.utm_elsewhere.get(key)
        if value:
            utm[key] = value
    return utm


def _named_in(text: str, names: tuple[tuple[int, str], ...]) -> int | None:
    """The id whose name appears in the text as a whole word or phrase, case-insensitively.

    The longest name wins, so "Ленинский-2" is not taken for "Ленинский".
    """
    folded = text.casefold()
    for item_id, name in sorted(names, key=lambda pair: -len(pair[1])):
        needle = " ".join(name.casefold().split())
        if needle and re.search(r"(?<!\w)" + re.escape(needle).replace(r"\ ", r"\s+") + r"(?!\w)", folded):
            return item_id
    return None


def _is_the_sites(name: str, site: SiteProfile) -> bool:
    """A display name that is the site's own name or domain ("Автомир", "Avtomir-demo")."""
    words = set(re.findall(r"\w+", name.casefold()))
    own = [set(re.findall(r"\w+", site.name.casefold()))] + [
        set(re.findall(r"\w+", d.split(".")[0])) for d in site.domains
    ]
    return bool(words) and any(o and (o <= words or words <= o) for o in own)


def match_lead(form: ParsedForm, site: SiteProfile) -> LeadDraft:
    """The lead a parsed form makes for this site (``phone`` None when it has none)."""
    phone = next((p for p in form.phones if p not in site.own_phones), None)
    searched = form.subject + "\n" + form.text
    page = page_url(form, site.domains)
    name = form.name
    if form.name_from_header and _is_the_sites(name, site):
        name = ""
    return LeadDraft(
        phone=phone,
        name=name,
        office_id=_named_in(searched, site.offices),
        department_id=_named_in(searched, site.departments),
        page_url=page,
        utm=_utm(form, page),
    )
