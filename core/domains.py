"""Site domains as people type them and as browsers send them."""

from __future__ import annotations

from typing import Any


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
    this page on" a guess. Read from ``connection_domains``, whose unique index also settles two
    saves at the same instant (``claim_domains``)."""
    from perezvon.core.models import ConnectionDomain

    wanted = {form: domain for domain in domains for form in browser_domains([domain])}
    query = ConnectionDomain.filter(domain__in=list(wanted))
    if connection_id is not None:
        query = query.exclude(connection_id=connection_id)
    held = {wanted[str(form)] for form in await query.values_list("domain", flat=True)}
    return [domain for domain in dict.fromkeys(domains) if domain in held]


async def claim_domains(connection_id: int, domains: list[str], db: Any) -> None:
    """Make ``domains`` (every browser form of each) the rows of ``connection_id`` in
    ``connection_domains``, on ``db`` (a transaction that also writes the connection).

    The unique index on the domain makes this fail with IntegrityError when another connection
    holds one of them, even when both saves run at the same instant -- the check that names the
    taken domain (``domains_of_others``) only reads, so it cannot stop a race by itself. The rows
    are deleted first: that is a write, so SQLite takes its write lock before anything is read."""
    from perezvon.core.models import ConnectionDomain

    await ConnectionDomain.filter(connection_id=connection_id).using_db(db).delete()
    forms = list(dict.fromkeys(browser_domains(domains)))
    await ConnectionDomain.bulk_create(
        [ConnectionDomain(connection_id=connection_id, domain=form) for form in forms], using_db=db
    )
