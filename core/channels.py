"""Traffic channel of a lead when the client did not send one (docs/site-script.md).

The site script classifies the visit itself (it sees the landing page's
referrer and click ids); this is the same rule for leads posted by other
clients, so every lead has a channel.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from perezvon.core.models import Channel

_PAID_MEDIUMS = {"cpc", "ppc", "cpm", "cpa", "cpv", "paid", "paidsearch", "display", "banner", "ads", "retargeting"}
_SEARCH_HOSTS = ("google.", "yandex.", "bing.", "mail.ru", "duckduckgo.", "yahoo.", "rambler.", "ya.ru")
_SOCIAL_HOSTS = (
    "vk.com",
    "vk.ru",
    "ok.ru",
    "facebook.",
    "instagram.",
    "t.me",
    "telegram.",
    "twitter.",
    "x.com",
    "youtube.",
    "tiktok.",
    "dzen.ru",
    "linkedin.",
    "pinterest.",
)
_SOCIAL_MEDIUMS = {"social", "smm", "social-network", "sm"}


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def detect(*, page_url: str, referrer: str, utm_medium: str, own_domains: list[str]) -> str:
    medium = utm_medium.strip().lower()
    query = parse_qs(urlsplit(page_url).query) if page_url else {}
    if medium in _PAID_MEDIUMS or "gclid" in query or "yclid" in query:
        return Channel.ADS
    if medium in _SOCIAL_MEDIUMS:
        return Channel.SOCIAL
    host = _host(referrer)
    if not host or any(host == d or host.endswith("." + d) for d in own_domains):
        return Channel.DIRECT
    if any(s in host for s in _SOCIAL_HOSTS):
        return Channel.SOCIAL
    if medium == "organic" or any(s in host for s in _SEARCH_HOSTS):
        return Channel.ORGANIC
    return Channel.REFERRAL
