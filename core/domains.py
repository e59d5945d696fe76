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
