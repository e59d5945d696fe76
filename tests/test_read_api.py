"""The read API (docs/admin.md): bearer keys, the Calls table's filters and grants, cursor pages, OpenAPI."""

from __future__ import annotations

import datetime as dt
import uuid

from test_admin_helpers import make_call, make_user

from perezvon.core.access import create_api_key
from perezvon.core.models import Attempt, Connection, Project


async def _site() -> Connection:
    project = await Project.create(name="API project")
    return await Connection.create(project=project, domain=f"api-{uuid.uuid4().hex[:8]}.example")


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


async def test_a_key_is_required_and_checked(perezvon_client):
    assert (await perezvon_client.get("/api/v1/calls")).status_code == 401
    wrong = await perezvon_client.get("/api/v1/calls", headers=bearer("pzv_" + "x" * 43))
    assert wrong.status_code == 401 and "errors" in wrong.json()
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_only_granted_calls_with_the_tables_filters_and_a_cursor(perezvon_client):
    mine, theirs = await _site(), await _site()
    base = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
    for n in range(7):
        await make_call(
            mine,
            phone=f"+791677700{n:02d}",
            created_at=base + dt.timedelta(hours=n),
            status="lost" if n % 2 else "successful",
            source="widget" if n < 3 else "api",
        )
    hidden = await make_call(theirs, phone="+79167779999", created_at=base)
    user = await make_user(level="view", connection=mine)
    _, raw = await create_api_key(user, "BI")
    seen, cursor = [], None
    while True:
        response = await perezvon_client.get(
            "/api/v1/calls", params={"limit": 3, **({"cursor": cursor} if cursor else {})}, headers=bearer(raw)
        )
        assert response.status_code == 200
        body = response.json()
        seen += [c["lead"]["phone"] for c in body["calls"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"+791677700{n:02d}" for n in range(6, -1, -1)]  # newest first, all, once
    lost = (await perezvon_client.get("/api/v1/calls?status=lost&app=api", headers=bearer(raw))).json()["calls"]
    assert {c["lead"]["phone"] for c in lost} == {"+79167770003", "+79167770005"}
    assert (await perezvon_client.get(f"/api/v1/calls/{hidden.id}", headers=bearer(raw))).status_code == 404
    assert (await perezvon_client.get(f"/api/v1/calls?connection={theirs.id}", headers=bearer(raw))).json()[
        "calls"
    ] == []


async def test_one_call_with_its_chain(perezvon_client):
    site = await _site()
    call = await make_call(site, phone="+79168880001", utm_source="google", visit={"pages": 3})
    await Attempt.create(
        call=call,
        number=1,
        direction="operator_first",
        started_at=dt.datetime.now(dt.UTC),
        operator_status=200,
        client_status=486,
        display_status="unsuccessful",
        reason="busy",
    )
    user = await make_user(level="view", connection=site)
    _, raw = await create_api_key(user)
    body = (await perezvon_client.get(f"/api/v1/calls/{call.id}", headers=bearer(raw))).json()
    assert body["id"] == str(call.id) and body["site"] == site.domain and body["status"] == "successful"
    assert body["lead"]["utm"]["source"] == "google" and body["lead"]["visit"] == {"pages": 3}
    assert body["attempts"][0]["client_status"] == 486 and body["auto_tags"] == ["unique", "target"]


async def test_bad_filters_and_cursors_get_clear_errors(perezvon_client):
    user = await make_user(staff=True)
    _, raw = await create_api_key(user)
    for query, field in (
        ("date_from=yesterday", "date_from"),
        ("status=great", "status"),
        ("limit=0", "limit"),
        ("cursor=garbage", "cursor"),
        ("tz=Mars/Base", "tz"),
    ):
        response = await perezvon_client.get(f"/api/v1/calls?{query}", headers=bearer(raw))
        assert response.status_code == 422, query
        assert field in response.json()["errors"], query


async def test_the_api_is_in_openapi(perezvon_client):
    spec = (await perezvon_client.get("/openapi.json")).json()
    assert "/api/v1/calls" in spec["paths"] and "/api/v1/calls/{call_id}" in spec["paths"]
    names = {p["name"] for p in spec["paths"]["/api/v1/calls"]["get"]["parameters"]}
    assert {"date_from", "date_to", "connection", "status", "app", "tag", "phone", "cursor", "limit"} <= names
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "Call" in spec["components"]["schemas"]


async def test_demo_prints_a_working_api_key(perezvon_app, perezvon_client):
    from perezvon.core.demo import seed_demo

    first = await seed_demo(perezvon_app)
    again = await seed_demo(perezvon_app)
    assert first["api_key"] == again["api_key"]  # idempotent
    response = await perezvon_client.get("/api/v1/calls", headers=bearer(first["api_key"]))
    assert response.status_code == 200
