"""The client called in, and missed calls become leads (docs/calls.md#the-client-called-in).

Over a real socket: the AMI emulator (tests/ami_emulator/inbound.py) emits an inbound call as
Asterisk with the shipped hook does, the Asterisk plugin reads it off its AMI link (logged in as the
shipped manager user) and hands it to the core's rules; the callbacks are placed by the simulator
through the real jobs (``perezvon_run_jobs``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import time
import types
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from ami_emulator import AmiEmulator, User
from ami_emulator.inbound import inbound_call
from test_admin_helpers import login, make_user

from perezvon.core import enablement
from perezvon.core.call_again import call_again
from perezvon.core.i18n import gettext
from perezvon.core.inbound import CALLED_IN, InboundCall, InboundCalls
from perezvon.core.models import (
    Attempt,
    Call,
    CallState,
    Lead,
    NotificationRecipient,
    OperatorNumber,
    PendingJob,
)
from perezvon.core.queue import CALLBACKS_QUEUE
from perezvon.plugins.asterisk.backend import AsteriskTelephony
from perezvon.plugins.asterisk.schemas import AsteriskSettings

SECRET = "s3cret-for-tests"
CONF = Path(__file__).parent.parent / "plugins/asterisk/conf"
SHIPPED_USER = User.from_manager_conf((CONF / "manager_perezvon.conf").read_text(), SECRET)


def new_did() -> str:
    """A number clients call, E.164, not shared with any other test's site (the test DB is shared)."""
    return f"+7495{uuid.uuid4().int % 10**7:07d}"


@pytest.fixture
async def emulator():
    emu = AmiEmulator(
        username="perezvon",
        secret=SECRET,
        speed=20,
        users={"perezvon": SHIPPED_USER},
        async_agi_contexts={"perezvon-leg"},
    )
    await emu.start()
    yield emu
    await emu.stop()


def make_backend(emu: AmiEmulator, app: Any, tmp_path: Path, username: str = "perezvon") -> AsteriskTelephony:
    settings = AsteriskSettings().load(
        {
            "port": emu.port,
            "username": username,
            "secret": SECRET,
            "ping_interval_seconds": 0.2,
            "ping_timeout_seconds": 0.3,
            "reconnect_min_seconds": 0.05,
        }
    )
    backend = AsteriskTelephony(settings, types.SimpleNamespace(data_dir=tmp_path), app.host.registry)
    # what Perezvon.start_engine does in a worker
    backend.inbound = InboundCalls(registry=app.host.registry, intake=app.intake, redis=app.redis)
    return backend


@pytest.fixture
async def backend(emulator, perezvon_app, tmp_path):
    telephony = make_backend(emulator, perezvon_app, tmp_path)
    await telephony.start()
    await telephony.link.wait_up(5)
    yield telephony
    await telephony.stop()


async def reported(backend: AsteriskTelephony) -> None:
    """Wait until the events the emulator has emitted reached the plugin and its reports are done:
    a Ping sent now is answered after them (one socket, in order), and the plugin starts each
    report as it reads the event."""
    await backend.link.send({"Action": "Ping"})
    await backend.inbound_watcher.drain()


async def waiting_for_redial(app: Any, site: Any, phone: str, run_jobs: Any) -> Call:
    """A lead whose first attempt found the client busy (simulator: 0486), now waiting for attempt 2."""
    assert app.intake is not None
    accepted = await app.intake.submit({"token": site.token, "phone": phone, "consent": True}, client_ip=None)
    await run_jobs()
    call = await Call.get(id=accepted.call_id)
    assert (call.state, call.attempts_made, call.display_status) == (CallState.SCHEDULED, 1, "pending")
    return call


async def attempt_due_now(app: Any, call: Call) -> None:
    """Bring the queued redial's job forward to now: it runs at the next look of the worker."""
    job_id = f"arq:job:attempt:{call.id}:{call.attempts_made + 1}"
    await app.redis.zadd(CALLBACKS_QUEUE, {f"attempt:{call.id}:{call.attempts_made + 1}": int(time.time() * 1000)})
    assert await app.redis.exists(job_id)


async def exported_row(client: Any, connection_id: int, csrf: str) -> list[str]:
    """The one call of a connection as the .xlsx export writes it (the user's language)."""
    start = await client.post("/calls/export", data={"csrf_token": csrf, "connection": str(connection_id)})
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    deadline = time.monotonic() + 60
    while (state := (await client.get(location + "/status")).json())["state"] == "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert state["state"] == "ready" and state["total"] == 1
    download = await client.get(location + "/download")
    rows = list(openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active.iter_rows(values_only=True))
    return [str(value) for value in rows[1]]


# ----------------------------------------------------------------------- the client called in
async def test_an_answered_inbound_call_from_the_client_stops_the_redials(
    emulator, backend, perezvon_app, perezvon_site, perezvon_run_jobs, perezvon_client, new_phone
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    phone = new_phone("0486")  # the simulator finds this client busy
    call = await waiting_for_redial(perezvon_app, perezvon_site, phone, perezvon_run_jobs)

    # the client rings the company's number from their mobile, written nationally, and an operator answers
    inbound_call(emulator, "8" + phone[2:], did.lstrip("+"), dial_status="ANSWER")
    await reported(backend)

    done = await Call.get(id=call.id)
    assert (done.state, done.display_status, done.reason) == (CallState.FINISHED, "unsuccessful", CALLED_IN)
    assert done.next_attempt_at is None and done.finished_at is not None and done.is_target is False
    # the redial's job comes due anyway: it finds the call finished and places nothing
    await attempt_due_now(perezvon_app, call)
    await perezvon_run_jobs()
    assert await Attempt.filter(call_id=call.id).count() == 1
    assert (await Call.get(id=call.id)).state == CallState.FINISHED

    # the call's page says why, in the user's language
    csrf = await login(perezvon_client, await make_user(level="view", connection=perezvon_site))
    perezvon_client.cookies.set("pz_lang", "en")
    assert "the client called in" in (await perezvon_client.get(f"/calls/{call.id}")).text
    perezvon_client.cookies.set("pz_lang", "ru")
    assert "клиент перезвонил сам" in (await perezvon_client.get(f"/calls/{call.id}")).text
    assert gettext(CALLED_IN, "ru") == "клиент перезвонил сам"
    # and so does the export, in the user's language
    assert "клиент перезвонил сам" in await exported_row(perezvon_client, perezvon_site.id, csrf)


async def test_a_queue_member_answering_counts_as_answered(
    emulator, backend, perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    did = new_did()
    perezvon_site.telephony = {"custom_operator_number": did}  # the number the site's clients are shown
    await perezvon_site.save()
    phone = new_phone("0486")
    call = await waiting_for_redial(perezvon_app, perezvon_site, phone, perezvon_run_jobs)
    inbound_call(emulator, phone.lstrip("+"), did, dial_status="", answered_var="yes")  # Queue(): no DIALSTATUS
    await reported(backend)
    assert (await Call.get(id=call.id)).reason == CALLED_IN


async def test_calls_that_do_not_match_are_left_alone(
    emulator, backend, perezvon_app, perezvon_site, perezvon_run_jobs, new_phone, caplog
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    phone = new_phone("0486")
    call = await waiting_for_redial(perezvon_app, perezvon_site, phone, perezvon_run_jobs)
    caplog.set_level(logging.INFO, logger="perezvon.inbound")
    inbound_call(emulator, new_phone().lstrip("+"), did, dial_status="ANSWER")  # someone else calls the site
    inbound_call(emulator, phone.lstrip("+"), new_did(), dial_status="ANSWER")  # the client calls another number
    inbound_call(emulator, phone.lstrip("+"), did, dial_status="NOANSWER")  # nobody answered the client
    await reported(backend)
    waiting = await Call.get(id=call.id)
    assert (waiting.state, waiting.display_status, waiting.reason) == (CallState.SCHEDULED, "pending", call.reason)
    assert "no site has this number; ignored" in caplog.text
    assert "a callback is already on its way" in caplog.text
    # and the missed call made no second lead for the client who is already waiting for one
    assert await Lead.filter(connection_id=perezvon_site.id, phone=phone).count() == 1


async def test_a_call_a_person_asked_to_call_again_is_left_as_asked(
    perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    phone = new_phone("0486")
    call = await waiting_for_redial(perezvon_app, perezvon_site, phone, perezvon_run_jobs)
    await call_again(None, call, user=await make_user(level="edit", connection=perezvon_site))
    sink = InboundCalls(registry=perezvon_app.host.registry, intake=perezvon_app.intake, redis=perezvon_app.redis)
    result = await sink.report(InboundCall(phone, did, answered=True, pbx_id=f"test/{uuid.uuid4()}"))
    assert result.connections == [perezvon_site.id] and result.stopped == []
    assert (await Call.get(id=call.id)).state == CallState.SCHEDULED


async def test_integrations_hear_the_end_and_nobody_is_mailed_a_failure(
    perezvon_app, perezvon_site, perezvon_run_jobs, new_phone
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    phone = new_phone("0486")
    call = await waiting_for_redial(perezvon_app, perezvon_site, phone, perezvon_run_jobs)
    await enablement.enable(perezvon_site, enablement.INTEGRATION, "webhooks")
    await NotificationRecipient.create(connection=perezvon_site, email="sales@example.com")
    # no Redis: the follow-ups stay recorded as pending (the sweep's to queue), where the test reads them
    sink = InboundCalls(registry=perezvon_app.host.registry, intake=perezvon_app.intake, redis=None)
    assert (await sink.report(InboundCall(phone, did, answered=True))).stopped == [str(call.id)]
    pending = set(await PendingJob.filter(job_id__contains=str(call.id)).values_list("job_id", flat=True))
    assert pending == {f"deliver:webhooks:call_finished:{call.id}"}


# ----------------------------------------------------------------------- missed calls
async def test_a_missed_inbound_call_becomes_a_lead_and_is_called_back(
    emulator, backend, perezvon_app, perezvon_site, perezvon_run_jobs, perezvon_client, new_phone
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    await enablement.enable(perezvon_site, enablement.APPLICATION, "missedcall")
    phone = new_phone()
    inbound_call(emulator, phone.lstrip("+"), did.lstrip("+"), dial_status="NOANSWER")
    await reported(backend)

    lead = await Lead.get(connection_id=perezvon_site.id, phone=phone)
    assert lead.source == "missedcall"
    assert lead.extra == {"dialled": did}
    await perezvon_run_jobs()  # the normal rules: the simulator calls the client back
    call = await Call.get(lead_id=lead.id)
    assert (call.state, call.display_status, call.attempts_made) == (CallState.FINISHED, "successful", 1)
    # the call's page and the export name its source and the number rung, in the user's words
    csrf = await login(perezvon_client, await make_user(level="view", connection=perezvon_site))
    perezvon_client.cookies.set("pz_lang", "ru")
    page = (await perezvon_client.get(f"/calls/{call.id}")).text
    assert "Пропущенные звонки" in page and "Номер, на который звонили" in page and did in page
    assert "Пропущенные звонки" in await exported_row(perezvon_client, perezvon_site.id, csrf)


async def test_every_worker_sees_the_event_and_one_lead_is_made(
    emulator, backend, perezvon_app, perezvon_site, perezvon_run_jobs, new_phone, tmp_path
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    await enablement.enable(perezvon_site, enablement.APPLICATION, "missedcall")
    second = make_backend(emulator, perezvon_app, tmp_path / "second")
    await second.start()
    try:
        await second.link.wait_up(5)
        phone = new_phone()
        inbound_call(emulator, phone.lstrip("+"), did, dial_status="BUSY")
        await reported(backend)
        await reported(second)
        assert await Lead.filter(connection_id=perezvon_site.id, phone=phone).count() == 1
    finally:
        await second.stop()


async def test_a_missed_call_to_a_site_without_the_app_makes_no_lead(
    emulator, backend, perezvon_app, perezvon_site, new_phone, caplog
):
    did = new_did()
    await OperatorNumber.create(connection=perezvon_site, phone=did, sort_order=9)
    caplog.set_level(logging.INFO, logger="perezvon.missedcall")
    phone = new_phone()
    inbound_call(emulator, phone.lstrip("+"), did, dial_status="NOANSWER")
    await reported(backend)
    assert not await Lead.exists(phone=phone)
    assert "the missed-call app is off there" in caplog.text


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("caller", "dialled", "logged"),
    [
        ("", "74951234567", "not a phone number; ignored"),  # a withheld number
        ("anonymous", "74951234567", "not a phone number; ignored"),
        ("101", "74951234567", "not a phone number; ignored"),  # an internal extension
        ("79161234567", "s", "not a phone number; ignored"),  # the provider sent no DID
        ("7916123456789999999", "74951234567", "not a phone number; ignored"),
    ],
)
async def test_bad_numbers_are_ignored_with_a_log_line(
    emulator, backend, perezvon_app, caller, dialled, logged, caplog
):
    caplog.set_level(logging.INFO, logger="perezvon.inbound")
    inbound_call(emulator, caller, dialled, dial_status="NOANSWER")
    await reported(backend)
    assert logged in caplog.text
    assert backend.link.up.is_set()  # the link goes on


async def test_the_rules_never_raise_on_bad_input(perezvon_app):
    sink = InboundCalls(registry=perezvon_app.host.registry, intake=perezvon_app.intake, redis=perezvon_app.redis)
    for call in (
        InboundCall("\x00", "74951234567", True),
        InboundCall("+7 916 123-45-67 доб. 12", "74951234567", True),
        InboundCall("79161234567", "", False),
        InboundCall("79161234567", "+" * 64, False, pbx_id="x" * 64),
    ):
        assert (await sink.report(call)).ignored in ("caller", "dialled")


def test_the_shipped_manager_user_reads_the_hooks_user_events():
    assert "user" in [c.strip() for c in SHIPPED_USER_READ()]


def SHIPPED_USER_READ() -> list[str]:  # noqa: N802 -- a constant read from the shipped file
    for line in (CONF / "manager_perezvon.conf").read_text().splitlines():
        key, _, value = line.split(";", 1)[0].partition("=")
        if key.strip() == "read":
            return value.split(",")
    return []


def test_the_shipped_hook_sends_the_event_the_plugin_reads():
    from perezvon.plugins.asterisk.inbound import EVENT_NAME
    from perezvon.plugins.asterisk.inbound import inbound_call as parse

    conf = (CONF / "extensions_perezvon_inbound.conf").read_text()
    assert f"UserEvent({EVENT_NAME},Caller: ${{CALLERID(num)}},Dialled: ${{ARG1}},DialStatus: ${{DIALSTATUS}}" in conf
    event = {"Event": "UserEvent", "UserEvent": EVENT_NAME, "Caller": "79161234567", "Dialled": "74951234567"}
    assert dataclasses.asdict(parse({**event, "DialStatus": "ANSWER", "Linkedid": "1.2"})) == {
        "caller": "79161234567",
        "dialled": "74951234567",
        "answered": True,
        "pbx_id": "/1.2",
        "status": "ANSWER",
    }
    assert parse({**event, "DialStatus": "NOANSWER"}).answered is False  # type: ignore[union-attr]
    assert parse({**event, "UserEvent": "Other"}) is None


async def test_a_manager_user_without_read_user_never_gets_the_hook(perezvon_app, tmp_path, new_phone):
    """The emulator stays honest: the old shipped permissions (no `user` class) see no UserEvent."""
    no_user = dataclasses.replace(SHIPPED_USER)
    from ami_emulator import facts

    no_user.read = SHIPPED_USER.read & ~facts.USER
    emu = AmiEmulator(username="perezvon", secret=SECRET, speed=20, users={"perezvon": no_user})
    await emu.start()
    telephony = make_backend(emu, perezvon_app, tmp_path)
    seen: list[Any] = []
    await telephony.start()
    try:
        await telephony.link.wait_up(5)
        assert telephony.link.manager is not None
        telephony.link.manager.register_event("*", lambda _m, event: seen.append(event.get("Event")))
        inbound_call(emu, new_phone().lstrip("+"), "74951234567", dial_status="NOANSWER")
        await telephony.link.send({"Action": "Ping"})  # everything emitted before it has arrived
        assert "Hangup" in seen and "UserEvent" not in seen
    finally:
        await telephony.stop()
        await emu.stop()


async def test_the_emulator_writes_the_hooks_event_as_asterisk_does(emulator, new_phone):
    """The bytes on the wire, read by a plain socket: the channel snapshot, then the name, then the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    try:
        await reader.readline()  # the banner
        writer.write(f"Action: Login\r\nUsername: perezvon\r\nSecret: {SECRET}\r\n\r\n".encode())
        assert "Response: Success" in (await reader.readuntil(b"\r\n\r\n")).decode()
        phone = new_phone()
        inbound_call(emulator, "", "74951234567", dial_status="CANCEL")  # a withheld number
        inbound_call(emulator, phone[1:], "74951234567", dial_status="NOANSWER", hook=False)
        blocks: list[str] = []
        while len([b for b in blocks if b.startswith("Event: Hangup\r\n")]) < 2:
            blocks.append((await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode())
    finally:
        writer.close()
    names = [b.split("\r\n", 1)[0] for b in blocks if not b.startswith("Event: FullyBooted")]
    assert names == [
        "Event: Newchannel",
        "Event: HangupRequest",  # the caller hung up while it rang
        "Event: UserEvent",  # the hangup handler runs before the channel is gone
        "Event: Hangup",
        "Event: Newchannel",
        "Event: Hangup",  # no hook in that dialplan: no UserEvent
    ]
    event = next(b for b in blocks if b.startswith("Event: UserEvent")).rstrip("\r\n").split("\r\n")
    assert event[1] == "Privilege: user,all"
    assert "CallerIDNum: <unknown>" in event and "Context: perezvon-inbound" in event and "Exten: s" in event
    # the name, then the body (its keys in no promised order: Asterisk builds it from a JSON object)
    assert event[-5] == "UserEvent: PerezvonInbound"
    assert set(event[-4:]) == {"Caller: ", "Dialled: 74951234567", "DialStatus: CANCEL", "Answered: "}
    newchannel = blocks[[b.split("\r\n", 1)[0] for b in blocks].index("Event: Newchannel")]
    assert "Context: from-trunk" in newchannel and "Exten: 74951234567" in newchannel
    assert "ChannelStateDesc: Ring" in newchannel


def test_serve_calls_a_missed_inbound_call_back_through_asterisk(tmp_path):
    """The whole product: `perezvon serve` on the AMI emulator; the worker's link reads the hook's event,
    the missed call becomes a lead of the demo site (its number is +74951234567) and is called back."""
    import sqlite3

    from ami_emulator import Behaviour
    from test_asterisk import EmulatorThread, operator_presses
    from test_cli import demo_env, running_server

    thread = EmulatorThread(
        username="perezvon",
        secret=SECRET,
        speed=20,
        async_agi_contexts={"perezvon-leg"},
        users={"perezvon": SHIPPED_USER},
        default_behaviour=Behaviour.human(1.0, hangup_after=40),
    )
    with thread as emu:
        emu.set_behaviour("74951234567", operator_presses("1"))
        (tmp_path / "plugins.toml").write_text(f"""
[perezvon]
telephony = "asterisk"

[plugins.asterisk]
enabled = true
port = {emu.port}
username = "perezvon"
secret = "{SECRET}"

[plugins.speech]
enabled = true

[plugins.missedcall]
enabled = true
""")
        env = {**demo_env(tmp_path), "PEREZVON_PLUGINS": str(tmp_path / "plugins.toml")}
        with running_server(env, tmp_path) as (base_url, _demo, client):
            deadline = time.monotonic() + 30
            while client.get(f"{base_url}/healthz").json()["telephony"] != "ok":
                assert time.monotonic() < deadline, client.get(f"{base_url}/healthz").json()
                time.sleep(0.1)
            # the client rings the site's number; nobody answers
            thread.call(lambda: inbound_call(emu, "89165557788", "74951234567", dial_status="NOANSWER"))
            db = sqlite3.connect(tmp_path / "var" / "perezvon.sqlite3")
            deadline = time.monotonic() + 40
            while (
                not (
                    row := db.execute(
                        "SELECT leads.source, calls.state, calls.display_status FROM leads JOIN calls ON calls.lead_id = leads.id "
                        "WHERE leads.phone = '+79165557788'"
                    ).fetchone()
                )
                or row[1] != "finished"
            ):
                assert time.monotonic() < deadline, row
                time.sleep(0.2)
            assert row == ("missedcall", "finished", "successful")
        assert [o.get_ci("Channel") for o in emu.actions("Originate")] == [
            "PJSIP/74951234567@trunk",
            "PJSIP/79165557788@trunk",
        ]
