"""Site domains as people type them and as browsers send them."""

from __future__ import annotations


def browser_domains(domains: list[str]) -> list[str]:
    """The domains as stored and as a browser's ``location.hostname`` or ``Origin`` spells them:
    a Cyrillic domain (пример.рф) is ``xn--e1afmkfd.xn--p1ai`` there."""
    out: list[str] = []
    for domain in domains:
        domain = domain.strip().lower().rstrip(".")
        out.append(domain)
        try:
            ascii_form = domain.encode("idna").decode("ascii")
        except UnicodeError:
            continue
        if ascii_form != domain:
            out.append(ascii_form)
    return out


async def domains_of_others(domains: list[str], connection_id: int | None = None) -> list[str]:
    """Which of ``domains`` another connection already serves, as its primary or an extra domain
    (compared as browsers send them, so пример.рф and xn--e1afmkfd.xn--p1ai are one domain).

    A domain belongs to one connection only: the site script, the intake's Origin check and the
    site-form matching all read a connection's domains, and two owners would make "whose site is
    this page on" a guess. Read on an admin save, not on a hot path, so a scan is fine."""
    from perezvon.core.models import Connection

    wanted = {form: domain for domain in domains for form in browser_domains([domain])}
    query = Connection.all() if connection_id is None else Connection.exclude(id=connection_id)
    taken: list[str] = []
    for primary, extra in await query.values_list("domain", "extra_domains"):
        for form in browser_domains([primary, *(extra or [])]):
            if form in wanted and wanted[form] not in taken:
                taken.append(wanted[form])
    return taken
