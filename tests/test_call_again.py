"""Call again (docs/calls.md#call-again): the button on the call's page and POST /api/v1/calls/{id}/redial.

Over real HTTP (the app served by uvicorn on a port of its own), with the simulator placing the
attempts through the real jobs (``perezvon_run_jobs``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from zoneinfo import ZoneInfo

import httpx
from live_helpers import live_server
from test_admin_helpers import login, make_user

from perezvon.core.access import create_api_key
from perezvon.core.masking import mask_phone
from perezvon.core.models import AccessGrant, Attempt, CalendarDay, Call, CallRedial, CallState, OperatorNumber
from perezvon.core.queue import CALLBACKS_QUEUE
from perezvon.web.app import create_app

EN = {"Accept-Language": "en"}


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}", **EN}


async def _called(client: httpx.AsyncClient, site, phone: str, run_jobs) -> Call:
    """A lead on ``site`` called back through the simulator: a finished call with one attempt."""
    answer = await client.post("/api/v1/leads", json={"token": site.token, "phone": phone, "consent": True})
    assert answer.status_code == 201, answer.text
    await run_jobs()
    call = await Call.get(id=answer.json()["call_id"])
    assert call.state == CallState.FINISHED and call.attempts_made == 1
    return call


async def test_an_editor_calls_again_from_the_calls_page_and_a_viewer_cannot(
    perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        async with httpx.AsyncClient(base_url=base, headers=EN) as editor_client:
            call = await _called(editor_client, perezvon_site, new_phone(), perezvon_run_jobs)
            editor = await make_user(level="edit", connection=perezvon_site, first_name="Olga", last_name="Smirnova")
            csrf = await login(editor_client, editor)
            page = (await editor_client.get(f"/calls/{call.id}")).text
            assert f'action="/calls/{call.id}/again"' in page and "Not called again by hand." not in page

            # a failure first: while an attempt is on the line the button is refused with the reason
            await Call.filter(id=call.id).update(state=CallState.DIALLING)
            busy = await editor_client.post(f"/calls/{call.id}/again", data={"csrf_token": csrf})
            assert busy.status_code == 409
            assert "This call is being dialled right now: wait for the attempt to end." in busy.text
            assert not await CallRedial.exists(call_id=call.id)
            await Call.filter(id=call.id).update(state=CallState.FINISHED)

            # then the retry: the attempt is queued, the simulator completes it
            pressed = await editor_client.post(f"/calls/{call.id}/again", data={"csrf_token": csrf})
            assert pressed.status_code == 303 and pressed.headers["location"] == f"/calls/{call.id}#again"
            pending = await Call.get(id=call.id)
            assert (pending.state, pending.display_status, pending.is_target) == ("scheduled", "pending", None)
            assert "Attempt 2 is being placed now." in (await editor_client.get(f"/calls/{call.id}")).text
            await perezvon_run_jobs()
            done = await Call.get(id=call.id)
            assert (done.state, done.display_status, done.attempts_made) == ("finished", "successful", 2)
            attempts = await Attempt.filter(call_id=call.id).order_by("number")
            assert [(a.number, a.operator_status, a.client_status) for a in attempts] == [(1, 200, 200), (2, 200, 200)]
            redial = await CallRedial.get(call_id=call.id)
            assert (redial.attempt_number, redial.via, redial.user_id) == (2, "admin", editor.id)
            page = (await editor_client.get(f"/calls/{call.id}")).text
            assert "Attempt 2 asked for by Olga Smirnova" in page and "in the admin" in page
            assert "by hand" in page  # the chain marks the manual attempt
            local = redial.created_at.astimezone(ZoneInfo(perezvon_site.timezone))
            assert local.strftime("%d.%m.%Y %H:%M") in page

            # Russian first: the same page in Russian says it in Russian
            await editor_client.get("/lang/ru?next=/calls")
            ru = (await editor_client.get(f"/calls/{call.id}")).text
            assert "Попытка 2 по запросу: Olga Smirnova" in ru and "Позвонить снова" in ru

        async with httpx.AsyncClient(base_url=base, headers=EN) as viewer_client:
            viewer = await make_user(level="view", connection=perezvon_site)
            csrf = await login(viewer_client, viewer)
            page = (await viewer_client.get(f"/calls/{call.id}")).text
            assert "/again" not in page and "Attempt 2 asked for by Olga Smirnova" in page  # sees who, no button
            forged = await viewer_client.post(f"/calls/{call.id}/again", data={"csrf_token": csrf})
            assert forged.status_code == 403
            no_csrf = await viewer_client.post(f"/calls/{call.id}/again", data={})
            assert no_csrf.status_code in (400, 403)
        async with httpx.AsyncClient(base_url=base, headers=EN) as stranger_client:
            csrf = await login(stranger_client, await make_user())
            hidden = await stranger_client.post(f"/calls/{call.id}/again", data={"csrf_token": csrf})
            assert hidden.status_code == 404
    assert await CallRedial.filter(call_id=call.id).count() == 1
    assert (await Call.get(id=call.id)).attempts_made == 2


async def test_the_api_calls_again_with_an_edit_key_only(perezvon_app, perezvon_site, perezvon_run_jobs, new_phone):
    async with (
        live_server(create_app(perezvon_app, manage_lifecycle=False)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        call = await _called(client, perezvon_site, new_phone(), perezvon_run_jobs)
        editor = await make_user(level="edit", connection=perezvon_site, first_name="CRM", last_name="Robot")
        key, edit_key = await create_api_key(editor, "amo")
        _, view_key = await create_api_key(await make_user(level="view", connection=perezvon_site), "BI")
        _, stranger_key = await create_api_key(await make_user(), "other")
        url = f"/api/v1/calls/{call.id}/redial"

        assert (await client.post(url)).status_code == 401
        viewer = await client.post(url, headers=bearer(view_key))
        assert viewer.status_code == 403 and "edit access" in viewer.json()["errors"]["_schema"][0]
        assert (await client.post(url, headers=bearer(stranger_key))).status_code == 404
        unknown = await client.post(f"/api/v1/calls/{uuid.uuid4()}/redial", headers=bearer(edit_key))
        assert unknown.status_code == 404 and unknown.json()["errors"]["_schema"] == ["No such call."]
        assert (await client.post("/api/v1/calls/not-a-call/redial", headers=bearer(edit_key))).status_code == 404
        assert (await client.get(url, headers=bearer(edit_key))).status_code == 405

        await Call.filter(id=call.id).update(state=CallState.DIALLING)
        busy = await client.post(url, headers=bearer(edit_key))
        assert busy.status_code == 409 and "being dialled" in busy.json()["errors"]["_schema"][0]
        ru = await client.post(url, headers={**bearer(edit_key), "Accept-Language": "ru"})
        assert ru.json()["errors"]["_schema"] == ["Сейчас идёт дозвон по этому звонку: дождитесь конца попытки."]
        await Call.filter(id=call.id).update(state=CallState.FINISHED)

        placed = await client.post(url, headers=bearer(edit_key))
        assert placed.status_code == 202, placed.text
        body = placed.json()
        assert body["call_id"] == str(call.id) and body["attempt"]["number"] == 2
        assert body["attempt"]["waits_for_opening"] is False
        assert body["requested_by"] == f"CRM Robot, amo ({key.prefix}…)"
        assert body["call"]["status"] == "pending" and body["call"]["state"] == "scheduled"
        await perezvon_run_jobs()
        detail = (await client.get(f"/api/v1/calls/{call.id}", headers=bearer(edit_key))).json()
        assert detail["status"] == "successful" and detail["attempts_made"] == 2
        assert [a["number"] for a in detail["attempts"]] == [1, 2]
        redial = await CallRedial.get(call_id=call.id)
        assert (redial.via, redial.api_key_id, redial.user_id) == ("api", key.id, editor.id)

        # no operator number: refused, nothing changes
        numbers = await OperatorNumber.filter(connection_id=perezvon_site.id)
        await OperatorNumber.filter(connection_id=perezvon_site.id).delete()
        none = await client.post(url, headers=bearer(edit_key))
        assert none.status_code == 409 and "operator number" in none.json()["errors"]["_schema"][0]
        for number in numbers:
            await OperatorNumber.create(connection_id=perezvon_site.id, phone=number.phone)

        # a switched-off site: refused
        await perezvon_site.__class__.filter(id=perezvon_site.id).update(is_on=False)
        off = await client.post(url, headers=bearer(edit_key))
        assert off.status_code == 409 and "switched off" in off.json()["errors"]["_schema"][0]
        await perezvon_site.__class__.filter(id=perezvon_site.id).update(is_on=True)

        # the site closed today: the attempt waits for the next opening
        today = dt.datetime.now(ZoneInfo(perezvon_site.timezone)).date()
        for day in (today, today + dt.timedelta(days=1)):
            await CalendarDay.create(connection_id=perezvon_site.id, date=day, kind="holiday")
        later = await client.post(url, headers=bearer(edit_key))
        assert later.status_code == 202 and later.json()["attempt"]["waits_for_opening"] is True
        assert later.json()["attempt"]["number"] == 3
        due = dt.datetime.fromisoformat(later.json()["attempt"]["due_at"])
        assert due.astimezone(ZoneInfo(perezvon_site.timezone)).date() == today + dt.timedelta(days=2)
        waiting = await Call.get(id=call.id)
        assert (waiting.state, waiting.attempts_made, waiting.next_attempt_at) == ("scheduled", 2, due)
        await perezvon_run_jobs()
        assert (await Call.get(id=call.id)).attempts_made == 2  # not rung while closed
        await Call.filter(id=call.id).update(state=CallState.FINISHED, next_attempt_at=None)
        await CalendarDay.filter(connection_id=perezvon_site.id).delete()


async def test_the_redial_answer_is_masked_for_a_key_whose_user_may_not_see_contacts(
    perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    """The redial answer carries the call as GET /api/v1/calls/{id} shows it, masked the same way."""
    async with (
        live_server(create_app(perezvon_app, manage_lifecycle=False)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        phone = new_phone()
        call = await _called(client, perezvon_site, phone, perezvon_run_jobs)
        stored = (await Call.get(id=call.id).select_related("lead")).lead.phone
        editor = await make_user(level="edit", connection=perezvon_site)
        await AccessGrant.filter(user_id=editor.id).update(may_see_contacts=False)
        _, key = await create_api_key(editor, "amo")
        placed = await client.post(f"/api/v1/calls/{call.id}/redial", headers=bearer(key))
        assert placed.status_code == 202, placed.text
        assert placed.json()["call"]["lead"]["phone"] == mask_phone(stored)
        assert stored not in placed.text and stored[2:] not in placed.text
        await Call.filter(id=call.id).update(state=CallState.FINISHED, next_attempt_at=None)


async def test_the_redial_endpoint_is_in_the_openapi_document(perezvon_client):
    spec = (await perezvon_client.get("/openapi.json")).json()
    post = spec["paths"]["/api/v1/calls/{call_id}/redial"]["post"]
    assert {"202", "401", "403", "404", "409"} <= set(post["responses"])
    assert post["security"] == [{"apiKey": []}]
    assert {"attempt", "call", "requested_by"} <= set(spec["components"]["schemas"]["Redial"]["properties"])


async def test_a_call_waiting_for_its_redial_has_it_brought_forward(
    perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    """A busy client waits 3 minutes for redial 2 (the default matrix); calling again places redial 2
    now -- not an extra attempt -- and the redial queued for later finds it placed and does nothing."""
    async with (
        live_server(create_app(perezvon_app, manage_lifecycle=False)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        answer = await client.post(
            "/api/v1/leads", json={"token": perezvon_site.token, "phone": new_phone("0486"), "consent": True}
        )
        await perezvon_run_jobs()
        call = await Call.get(id=answer.json()["call_id"])
        assert (call.state, call.attempts_made) == ("scheduled", 1)
        planned = call.next_attempt_at
        assert planned is not None and planned > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
        _, key = await create_api_key(await make_user(level="edit", connection=perezvon_site))
        placed = await client.post(f"/api/v1/calls/{call.id}/redial", headers=bearer(key))
        assert placed.status_code == 202 and placed.json()["attempt"]["number"] == 2
        await perezvon_run_jobs()
        attempts = await Attempt.filter(call_id=call.id).order_by("number")
        assert [(a.number, a.client_status) for a in attempts] == [(1, 486), (2, 486)]
        after = await Call.get(id=call.id)
        assert (after.state, after.attempts_made) == ("scheduled", 2)  # the matrix goes on: redial 3 later
        # the job queued for the old time runs and skips: the attempt it was for is placed
        old_job = f"attempt:{call.id}:2"
        assert await perezvon_app.redis.zscore(CALLBACKS_QUEUE, old_job) is not None
        await perezvon_app.redis.zadd(CALLBACKS_QUEUE, {old_job: int(time.time() * 1000)})  # due now
        await perezvon_run_jobs()
        assert await Attempt.filter(call_id=call.id).count() == 2
        assert (await Call.get(id=call.id)).attempts_made == 2
        # bad ids in the admin: a 404, never a 500
        csrf = await login(client, await make_user(level="edit", connection=perezvon_site))
        assert (await client.post("/calls/not-a-call/again", data={"csrf_token": csrf})).status_code == 404
        assert (await client.post(f"/calls/{uuid.uuid4()}/again", data={"csrf_token": csrf})).status_code == 404
        await Call.filter(id=call.id).update(state=CallState.FINISHED, next_attempt_at=None)
