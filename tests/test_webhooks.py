"""Signed webhooks (docs/webhooks.md): events, signatures a receiver can check, replay protection."""

from __future__ import annotations

import json
import time

import pytest

from perezvon.core.models import Call, Delivery
from perezvon.plugins.webhooks import signing
from tests.test_integrations import Service, enable, make_deferred_jobs_due, post_lead

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
async def receiver():
    async with Service() as running:
        yield running


async def test_a_call_sends_lead_attempt_and_result_each_signed(
    perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, receiver
):
    receiver.default = (200, "ok")
    await enable(perezvon_site, "webhooks", url=receiver.url + "/perezvon/events?src=pv", secret=SECRET)
    phone = new_phone()
    created = await post_lead(perezvon_client, perezvon_site, phone, name="Олег")
    await perezvon_run_jobs()
    requests = await receiver.wait_for(3)
    by_event = {r.headers["x-perezvon-event"]: r for r in requests}
    assert set(by_event) == {"lead_created", "attempt_finished", "call_finished"}
    ids = set()
    for name, request in by_event.items():
        assert (request.method, request.path, request.query) == ("POST", "/perezvon/events", {"src": ["pv"]})
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        stamp = request.headers["x-perezvon-timestamp"]
        assert abs(int(stamp) - time.time()) < 120
        # what a receiver does: recompute the HMAC over "<timestamp>.<raw body>"
        assert signing.verify(SECRET, request.body, stamp, request.headers["x-perezvon-signature"]) == int(stamp)
        body = request.json()
        assert body["event"] == name and body["id"] == request.headers["x-perezvon-event-id"]
        assert body["connection_id"] == perezvon_site.id
        assert body["lead"]["phone"] == phone and body["lead"]["name"] == "Олег"
        assert body["call"]["id"] == created["call_id"]
        ids.add(body["id"])
    assert len(ids) == 3
    assert by_event["attempt_finished"].json()["attempt"]["number"] == 1
    assert by_event["attempt_finished"].json()["attempt"]["display_status"] == "successful"
    assert by_event["call_finished"].json()["call"]["display_status"] == "successful"
    assert by_event["lead_created"].json()["attempt"] is None
    assert "Олег".encode() in by_event["lead_created"].body  # UTF-8 JSON
    rows = await Delivery.filter(call_id=created["call_id"]).order_by("id")
    assert sorted((d.event, d.attempt_number, d.ok) for d in rows) == [
        ("attempt_finished", 1, True),
        ("call_finished", None, True),
        ("lead_created", None, True),
    ]


async def test_only_the_chosen_events_are_sent(perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, receiver):
    await enable(perezvon_site, "webhooks", url=receiver.url + "/hook", secret=SECRET, events=["call_finished"])
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    (only,) = await receiver.wait_for(1)
    assert only.headers["x-perezvon-event"] == "call_finished"
    assert (await Call.get(id=created["call_id"])).display_status == "successful"
    assert await Delivery.filter(call_id=created["call_id"]).count() == 1


async def test_a_retry_keeps_the_event_id_and_signs_a_new_timestamp(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, receiver
):
    receiver.answers = [(503, "busy")]
    await enable(perezvon_site, "webhooks", url=receiver.url + "/hook", secret=SECRET, events=["lead_created"])
    await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_jobs_due(perezvon_app.redis)
    time.sleep(1.01)  # a later second, so the retry's timestamp differs
    await perezvon_run_jobs()
    first, second = await receiver.wait_for(2)
    assert first.headers["x-perezvon-event-id"] == second.headers["x-perezvon-event-id"]
    assert int(second.headers["x-perezvon-timestamp"]) > int(first.headers["x-perezvon-timestamp"])
    for request in (first, second):
        signing.verify(
            SECRET, request.body, request.headers["x-perezvon-timestamp"], request.headers["x-perezvon-signature"]
        )


def test_verification_refuses_tampering_wrong_keys_and_replays():
    body = json.dumps({"id": "e1", "event": "call_finished"}).encode()
    now = int(time.time())
    good = signing.signature(SECRET, now, body)
    assert good.startswith("v1=") and len(good) == 3 + 64
    assert signing.verify(SECRET, body, str(now), good) == now
    with pytest.raises(signing.BadSignature, match="mismatch"):
        signing.verify(SECRET, body + b" ", str(now), good)
    with pytest.raises(signing.BadSignature, match="mismatch"):
        signing.verify("another-secret-value", body, str(now), good)
    with pytest.raises(signing.BadSignature, match="mismatch"):  # the timestamp is signed too
        signing.verify(SECRET, body, str(now + 1), good)
    old = now - 301
    with pytest.raises(signing.BadSignature, match="tolerance"):
        signing.verify(SECRET, body, str(old), signing.signature(SECRET, old, body))
    with pytest.raises(signing.BadSignature, match="Timestamp"):
        signing.verify(SECRET, body, "yesterday", good)
