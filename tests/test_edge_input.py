"""Input no store can hold is refused at every entry point with a 4xx on its field (docs/calls.md#what-the-stores-can-hold).

Issue 13, items 4, 10, 11 and 12: the lead API, the state endpoint, the read API's
filters, the admin's filters, forms and export, the duplicate answer, and the
security headers.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from test_admin_helpers import csrf_of, login, make_call, make_user

from perezvon.core.access import create_api_key
from perezvon.core.models import Connection, Lead, Project


def lead(site, phone, **extra):
    return {"token": site.token, "phone": phone, "consent": True, **extra}


async def post_raw(client, body: bytes | str, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return await client.post("/api/v1/leads", content=body, headers={**headers, "Accept-Language": "en"})


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"a": value}
    return value


# --- the lead API -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"name": "a\x00b"}, ["name"]),
        ({"name": "a\ud800b"}, ["name"]),  # a lone surrogate, as a JSON escape
        ({"extra": {"note": "x\x00"}}, ["extra", "note"]),
        ({"extra": {"deep": {"k\ud800": "v"}}}, ["extra", "deep", "_schema"]),
        ({"utm": {"source": "a\x00"}}, ["utm", "source"]),
        ({"visitor_id": "\udfff"}, ["visitor_id"]),
        ({"preferred_at": "0001-01-01T00:00:00+14:00"}, ["preferred_at"]),
        ({"preferred_at": "9999-12-31T23:59:59-14:00"}, ["preferred_at"]),
        ({"preferred_at": "2199-01-01T10:00:00+03:00"}, ["preferred_at"]),
        ({"consent": "yes"}, ["consent"]),
        ({"consent": "on"}, ["consent"]),
        ({"consent": 1}, ["consent"]),
        ({"consent": "true"}, ["consent"]),
        ({"office_id": 2**63}, ["office_id"]),
    ],
)
async def test_a_lead_with_an_unstorable_value_is_refused_on_its_field(
    perezvon_client, perezvon_site, new_phone, fields, path
):
    phone = new_phone()
    body = json.dumps(lead(perezvon_site, phone, **fields))  # ensure_ascii: surrogates travel as \ud800 escapes
    response = await post_raw(perezvon_client, body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    for key in path:
        errors = errors[key]
    assert isinstance(errors, list) and errors and all(isinstance(m, str) for m in errors)
    assert not await Lead.filter(phone=phone).exists()


async def test_nan_infinity_and_deep_nesting_are_refused_not_crashed(perezvon_client, perezvon_site, new_phone):
    base = lead(perezvon_site, new_phone())
    text = json.dumps(base)[:-1]
    assert (await post_raw(perezvon_client, text + ', "extra": {"x": NaN}}')).status_code == 400
    infinite = await post_raw(perezvon_client, text + ', "extra": {"x": 1e999}}')
    assert infinite.status_code == 422 and infinite.json()["errors"]["extra"]["x"] == ["Not a finite number."]
    deep = await post_raw(perezvon_client, "[" * 30000 + "]" * 30000)
    assert deep.status_code == 400 and deep.json()["errors"]["_schema"] == ["Nested too deeply."]
    deep_extra = await post_raw(perezvon_client, json.dumps({**base, "extra": nested(40)}))
    assert deep_extra.status_code == 400
    # a string full of brackets is not nesting
    brackets = await post_raw(perezvon_client, json.dumps({**base, "name": "[{" * 60}))
    assert brackets.status_code == 201, brackets.text
    fine = await post_raw(perezvon_client, json.dumps({**base, "phone": new_phone(), "extra": nested(20)}))
    assert fine.status_code == 201
    assert (await perezvon_client.get("/healthz")).status_code in (200, 503)  # the server is still there


async def test_only_json_in_utf8_is_taken(perezvon_client, perezvon_site, new_phone):
    body = json.dumps(lead(perezvon_site, new_phone()))
    assert (await post_raw(perezvon_client, body, "text/plain")).status_code == 415
    assert (await post_raw(perezvon_client, body, None)).status_code == 415
    assert (await post_raw(perezvon_client, body, "application/x-www-form-urlencoded")).status_code == 415
    utf16 = await post_raw(perezvon_client, body.encode("utf-16"), "application/json; charset=utf-16")
    assert utf16.status_code == 415 and "_schema" in utf16.json()["errors"]
    assert (await post_raw(perezvon_client, body.encode("utf-16"), "application/json")).status_code == 400
    assert (await post_raw(perezvon_client, body, "application/json; charset=UTF-8")).status_code == 201


async def test_the_state_endpoint_refuses_over_long_and_broken_tokens(perezvon_client, perezvon_site, new_phone):
    created = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone()))
    call_id = created.json()["call_id"]
    for token in ("x" * 65, "x" * 5000, "a%00b", "%ED%A0%80", perezvon_site.token + "%00"):
        response = await perezvon_client.get(f"/api/v1/calls/{call_id}/state?token={token}")
        assert response.status_code == 404 and "call_id" in response.json()["errors"]
    ok = await perezvon_client.get(f"/api/v1/calls/{call_id}/state", params={"token": perezvon_site.token})
    assert ok.status_code == 200
    # the site script's own paths: a token no site can have is no site, not a database error
    for path in ("/site/config", "/inject"):
        for query in ("token=%00", "token=" + "x" * 5000, "token=a%00b&x=1"):
            response = await perezvon_client.get(f"{path}?{query}")
            assert response.status_code < 500, (path, query)


# --- item 11: the duplicate answer ----------------------------------------------------------------


async def test_a_duplicate_answer_reveals_no_identifier(perezvon_client, perezvon_site, new_phone):
    phone = new_phone()
    first = await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, phone))
    again = await perezvon_client.post(
        "/api/v1/leads", json=lead(perezvon_site, phone.replace("+7", "8")), headers={"Accept-Language": "en"}
    )
    assert first.status_code == 201 and again.status_code == 200
    body = again.json()
    assert body == {"duplicate": True, "message": "A callback to this number has already been requested."}
    assert first.json()["call_id"] not in again.text and first.json()["lead_id"] not in again.text


# --- item 12: headers -----------------------------------------------------------------------------


async def test_json_answers_say_nosniff_and_hsts_is_an_option(perezvon_app, perezvon_client, perezvon_site, new_phone):
    import httpx

    from perezvon.web.app import create_app

    answers = [
        await perezvon_client.post("/api/v1/leads", json=lead(perezvon_site, new_phone())),
        await perezvon_client.post("/api/v1/leads", json={"token": perezvon_site.token}),
        await perezvon_client.get("/openapi.json"),
        await perezvon_client.get("/api/v1/calls"),
        await perezvon_client.get(f"/site/config?token={perezvon_site.token}"),
    ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert "strict-transport-security" not in answer.headers  # not asked for
    saved = perezvon_app.settings.hsts_seconds
    perezvon_app.settings.hsts_seconds = 31536000
    try:
        app = create_app(perezvon_app, manage_lifecycle=False)
        for base, expected in (("https://testserver", "max-age=31536000"), ("http://testserver", None)):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as client:
                response = await client.get("/openapi.json")
                assert response.headers.get("strict-transport-security") == expected, base
                assert response.headers["x-content-type-options"] == "nosniff"
    finally:
        perezvon_app.settings.hsts_seconds = saved


# --- the read API ---------------------------------------------------------------------------------


async def _api_key() -> dict:
    _, raw = await create_api_key(await make_user(staff=True))
    return {"Authorization": f"Bearer {raw}"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("date_to=9999-12-31", "date_to"),
        ("date_from=0001-01-01", "date_from"),
        (f"connection={2**63}", "connection"),
        (f"connection={2**31}", "connection"),
        ("connection=99999999999999999999999999", "connection"),
        ("date_from=", "date_from"),
        ("status=", "status"),
        ("tz=", "tz"),
        ("tag=a%00b", "tag"),
        ("limit=", "limit"),
        ("limit=%C2%B2", "limit"),  # "²" is a digit to str.isdigit, not to int()
    ],
)
async def test_read_api_filters_out_of_range_or_empty_are_422(perezvon_client, query, field):
    response = await perezvon_client.get(f"/api/v1/calls?{query}", headers=await _api_key())
    assert response.status_code == 422, response.text
    assert field in response.json()["errors"]


async def test_read_api_cursor_in_year_one_is_422(perezvon_client):
    import base64

    cursor = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}".encode()).decode().rstrip("=")
    response = await perezvon_client.get(f"/api/v1/calls?cursor={cursor}", headers=await _api_key())
    assert response.status_code == 422 and "cursor" in response.json()["errors"]


# --- the admin ------------------------------------------------------------------------------------


async def _admin_site() -> Connection:
    project = await Project.create(name="Edge project")
    return await Connection.create(project=project, domain=f"edge-{uuid.uuid4().hex[:8]}.example", name="Edge")


async def test_admin_filters_out_of_range_show_an_error_not_a_500(perezvon_client):
    site = await _admin_site()
    await make_call(site, phone="+79167770001", created_at=dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC))
    csrf = await login(perezvon_client, await make_user(level="view", connection=site))
    for url in (
        "/calls?date_to=9999-12-31",
        f"/calls?connection={2**63}",
        "/dashboard?date_to=9999-12-31",
        "/dashboard?date_from=0001-01-01",
        f"/dashboard?connection={2**31}",
    ):
        response = await perezvon_client.get(url)
        assert response.status_code == 200, url
        assert "2000-01-01" in response.text or "No such id" in response.text or "Нет такого" in response.text, url
    # an export with such a filter is refused up front, never started to end as failed
    started = await perezvon_client.post(
        "/calls/export", data={"csrf_token": csrf, "date_to": "9999-12-31", "connection": str(site.id)}
    )
    assert started.status_code == 303 and started.headers["location"] == "/calls"


async def test_admin_forms_refuse_nul_and_huge_ids_with_a_4xx(perezvon_client):
    site = await _admin_site()
    call = await make_call(site, phone="+79167770002")
    csrf = await login(perezvon_client, await make_user(level="edit", connection=site))
    tagged = await perezvon_client.post(f"/calls/{call.id}/tags", data={"csrf_token": csrf, "name": "a\x00b"})
    assert tagged.status_code == 422
    for url in (f"/connections/{2**63}", f"/projects/{2**40}", "/calls?phone=%00"):
        response = await perezvon_client.get(url)
        assert response.status_code in (404, 422), url
    attempt = await perezvon_client.get(f"/calls/{call.id}/recording?attempt=%C2%B2")
    assert attempt.status_code == 404
    page = await perezvon_client.get(f"/calls/{call.id}")
    assert page.status_code == 200 and csrf_of(page.text)
