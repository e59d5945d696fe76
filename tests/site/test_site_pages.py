"""Apps' code is fetched only on pages where their rules can show them (docs/site-script.md#pages-an-app-may-show-on).

A real Chromium opens a customer's pages: the loader decides from the address which apps' code
to fetch, and a single-page site that moves on (history.pushState) gets the code of an app that
may show on the new address, which then starts there.
"""

from __future__ import annotations

from sitehelpers import LEADGEN, WIDGET, ready, wait_for

HIDE_ON_CHECKOUT = {"rules": [{"target": "url", "operator": "contains", "value": "checkout", "show": False}]}
PROMO_ONLY = {
    "generators": [
        {
            "id": "spring",
            "filters": [{"target": "url", "operator": "contains", "value": "promo"}],
            "trigger": {"kind": "time", "time_seconds": 1},
        }
    ]
}


async def visit(page, url: str) -> list[str]:
    """Open ``url``; the app scripts the page fetched (the runtime has started by then)."""
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    await page.goto(url)
    await page.wait_for_function("window.Perezvon && window.Perezvon.readyAt !== undefined || performance.now() > 3000")
    await page.wait_for_load_state("networkidle")
    return [url.split("/site/static/", 1)[1].split(".", 1)[0] for url in fetched if "/site/static/app-" in url]


async def test_each_app_is_fetched_only_where_its_rules_can_show_it(live, make_site, page):
    site = await make_site(widget=HIDE_ON_CHECKOUT, leadgen=PROMO_ONLY)

    assert await visit(page, live.page_url(site, query="?step=checkout")) == []
    assert await page.locator(f"{WIDGET}, {LEADGEN}").count() == 0

    assert await visit(page, live.page_url(site, query="?step=cart")) == ["app-widget"]
    await ready(page, "widget")

    assert sorted(await visit(page, live.page_url(site, query="?from=promo"))) == ["app-leadgen", "app-widget"]
    await ready(page, "leadgen")
    await wait_for(lambda: page.locator(LEADGEN).is_visible(), message="the promotion")


async def test_a_single_page_site_gets_an_app_when_it_moves_to_a_page_the_app_may_show_on(live, make_site, page):
    site = await make_site(widget=HIDE_ON_CHECKOUT, leadgen=PROMO_ONLY)
    assert await visit(page, live.page_url(site, query="?step=checkout")) == []

    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    await page.evaluate("history.pushState({}, '', location.pathname + '?from=promo')")
    await ready(page, "leadgen")
    await wait_for(lambda: page.locator(LEADGEN).is_visible(), message="the promotion after the move")
    await ready(page, "widget")
    assert sorted(u.split("/site/static/", 1)[1].split(".", 1)[0] for u in fetched if "/app-" in u) == [
        "app-leadgen",
        "app-widget",
    ]

    # moving on again fetches nothing twice
    fetched.clear()
    await page.evaluate("history.pushState({}, '', location.pathname + '?from=promo&page=2')")
    await page.wait_for_timeout(300)
    assert not [u for u in fetched if "/app-" in u]
