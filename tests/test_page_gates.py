"""Which pages an app can show on, decided from the address alone (docs/site-script.md#pages-an-app-may-show-on).

The gates are checked here against the runtime's own rule semantics, rule by rule, and through
the loader the server builds; tests/site/test_site_pages.py watches Chromium fetch (or not) the
apps' code on real pages.
"""

from __future__ import annotations

import json

import pytest

from perezvon.api import UrlCondition, hidden_where, shown_where_any
from perezvon.core import enablement
from perezvon.core.page_gates import encoded


def rule(value, *, show=True, weight=0, operator="contains", target="url", **more):
    return {"target": target, "operator": operator, "value": value, "show": show, "weight": weight, **more}


def runtime_shows(rules, href: str) -> bool:
    """The site runtime's ``bestRule`` (runtime.js), written out: the heaviest matching rule, the
    first among equals; shown unless it hides."""

    def matches(r):
        t, v = href.lower(), str(r.get("value") or "").lower()
        equal = t == v or t.removesuffix("/") == v.removesuffix("/")
        return {
            "contains": v in t,
            "not_contains": v not in t,
            "equals": equal,
            "not_equals": not equal,
            "starts_with": t.startswith(v),
        }[r["operator"]]

    best = None
    for r in rules:
        if r["target"] == "url" and matches(r) and (best is None or r["weight"] > best["weight"]):
            best = r
    return best is None or best["show"] is not False


def loader_allows(gate, href: str) -> bool:
    """The loader's ``P.g`` (loader.js), written out over the encoded gate."""
    if gate is None:
        return True
    t = href.lower()

    def holds(code, value, negated=0):
        x = t.startswith(value) if code > 1 else (t.removesuffix("/") == value if code else value in t)
        return not x if negated else x

    return any(all(holds(*c) for c in alternative) for alternative in encoded(gate))


HREFS = [
    "https://shop.example/",
    "https://shop.example/checkout",
    "https://shop.example/checkout/",
    "https://shop.example/CHECKOUT/pay?x=1",
    "https://shop.example/cars/kia",
    "https://shop.example/promo?utm_source=vk",
]

RULE_SETS = [
    [rule("checkout", show=False)],
    [rule("checkout", show=False, weight=5), rule("pay", weight=1)],
    [rule("checkout", show=False, weight=1), rule("pay", weight=5)],  # "pay" may win: no certainty
    [rule("pay"), rule("checkout", show=False)],  # equal weights: the first listed wins
    [rule("checkout", show=False), rule("pay")],
    [rule("https://shop.example/checkout/", show=False, operator="equals")],
    [rule("cars", show=False, operator="not_contains", weight=3)],
    [rule("https://shop.example/cars", show=False, operator="starts_with")],
    [rule("https://shop.example/", show=False, operator="not_equals")],
    [rule("vk", show=False, target="utm_source", weight=9)],  # UTM: the loader cannot tell
    [rule("checkout", show=False, date_from="2026-01-01")],  # a period: the loader cannot tell
]


@pytest.mark.parametrize("rules", RULE_SETS)
def test_a_hiding_rule_skips_only_pages_where_the_runtime_hides_the_app(rules):
    gate = hidden_where(rules)
    for href in HREFS:
        if not loader_allows(gate, href):
            assert not runtime_shows(rules, href), (rules, href)


def test_hiding_rules_the_loader_can_decide_become_the_gate():
    assert hidden_where([]) is None
    assert hidden_where([rule("checkout", show=False, weight=1), rule("pay", weight=5)]) is None
    assert hidden_where([rule("vk", show=False, target="utm_source")]) is None
    gate = hidden_where([rule("Checkout", show=False), rule("/thanks/", show=False, operator="equals")])
    assert encoded(gate) == [[[0, "checkout", 1], [1, "/thanks", 1]]]
    assert not loader_allows(gate, "https://a.example/checkout") and loader_allows(gate, "https://a.example/")


def test_promotions_gate_their_app_to_the_pages_their_filters_name():
    promo = [rule("promo")]
    cars = [rule("cars", operator="starts_with"), rule("sold", operator="not_contains")]
    gate = shown_where_any([promo, cars])
    assert encoded(gate) == [[[0, "promo"]], [[2, "cars"], [0, "sold", 1]]]
    assert loader_allows(gate, "https://a.example/promo") and not loader_allows(gate, "https://a.example/")
    # a promotion without URL filters (or with UTM ones only) can show anywhere
    assert shown_where_any([promo, []]) is None
    assert shown_where_any([promo, [rule("vk", target="utm_source")]]) is None
    # no promotion at all: no page
    assert shown_where_any([]) == []


def test_conditions_know_only_the_runtime_operators():
    with pytest.raises(ValueError):
        UrlCondition("matches_regex", "x")


async def boot_of(client, connection) -> dict:
    body = (await client.get(f"/inject?token={connection.token}")).text
    return json.loads(body.split("var c = ", 1)[1].split(", P =", 1)[0])


async def test_the_loader_carries_the_gates_and_leaves_out_apps_that_can_show_nowhere(perezvon_client, perezvon_site):
    connection = perezvon_site
    await enablement.enable(
        connection, enablement.APPLICATION, "widget", {"rules": [rule("checkout", show=False, weight=1)]}
    )
    await enablement.enable(
        connection,
        enablement.APPLICATION,
        "leadgen",
        {"generators": [{"id": "spring", "filters": [rule("promo")]}, {"id": "off", "enabled": False}]},
    )
    # a slider with every card hidden has nothing to show anywhere
    await enablement.enable(connection, enablement.APPLICATION, "slider", {"cards": []})
    boot = await boot_of(perezvon_client, connection)
    config = (await perezvon_client.get(f"/site/config?token={connection.token}")).json()
    scripts = {app["key"]: app["script"] for app in config["apps"]}
    assert sorted(scripts) == ["leadgen", "widget"] and sorted(boot["a"]) == sorted(scripts.values())
    assert boot["g"] == {scripts["widget"]: [[[0, "checkout", 1]]], scripts["leadgen"]: [[[0, "promo"]]]}
    # the runtime asks the loader for gates: the config does not repeat them
    assert all("pages" not in app for app in config["apps"])


async def test_a_loader_without_gates_carries_none(perezvon_client, perezvon_site):
    connection = perezvon_site
    await enablement.enable(connection, enablement.APPLICATION, "widget", {})
    boot = await boot_of(perezvon_client, connection)
    assert len(boot["a"]) == 1 and "g" not in boot and "w" not in boot
