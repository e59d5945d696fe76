"""Announcements and waiting (issue 16, docs/calls.md#announcements-and-waiting): the recorded-call
notice and the client's hold music, in the scenario on the simulator, end to end through the real
workers, and on the admin's Telephony tab. The same on the AMI emulator: tests/test_asterisk.py."""

from __future__ import annotations

import uuid

import httpx
import pytest
from test_admin_helpers import login, make_user

from perezvon.core import announcements
from perezvon.core.models import Connection, Project
from perezvon.core.registry import AttemptPlan, AttemptProgress
from perezvon.core.schemas import TelephonySettingsSchema
from perezvon.plugins.simulator.backend import SimulatedTelephony
from perezvon.plugins.simulator.schemas import SimulatorSettings
from perezvon.web.admin.i18n import LANG_COOKIE
from perezvon.web.app import create_app

OPERATOR, CLIENT = "+74951234567", "+79161234567"
NOTICE = announcements.RECORDED_NOTICE


class Progress(AttemptProgress):
    async def leg_dialled(self, leg):
        pass


def simulator(*rules):
    return SimulatedTelephony(
        SimulatorSettings().load({"speed": 200, "ring_seconds": 5, "talk_seconds": 90, "rules": list(rules)})
    )


def plan(direction="operator_first", *, notice=NOTICE, **telephony):
    return AttemptPlan(
        call_id="c",
        attempt_number=1,
        direction=direction,
        operator_number=OPERATOR,
        operator_extension="",
        client_number=CLIENT,
        operator_text="Обратный звонок с сайта Тест.",
        client_text="Здравствуйте! Оставайтесь на линии.",
        telephony=TelephonySettingsSchema().load(telephony),
        recorded_notice=notice,
    )


async def play(sim, attempt):
    outcome = await sim.place_attempt(attempt, Progress())
    return (outcome.operator_status, outcome.client_status), sim.recent[-1]


def steps(log):
    return [f"{entry[0]}:{entry[1]}" for entry in log]


# --------------------------------------------------------------------------- the scenario
@pytest.mark.parametrize(
    ("who", "heard_by"),
    [("operator", ["operator"]), ("client", ["client"]), ("both", ["operator", "client"]), ("nobody", [])],
)
async def test_operator_first_says_the_notice_to_whom_it_is_for_right_before_the_bridge(who, heard_by):
    pair, log = await play(simulator(), plan(recorded_notice=who))
    assert pair == (200, 200)
    said = [step[1] for step in log if step[0] == "say" and step[2] == NOTICE]
    assert said == heard_by
    bridge = steps(log).index("bridge:90")
    assert all(i < bridge for i, step in enumerate(log) if step[0] == "say")
    if heard_by:  # the last things before the bridge
        assert [step[1] for step in log[bridge - len(heard_by) : bridge]] == heard_by


async def test_client_first_plays_hold_music_from_the_operators_dial_to_the_bridge():
    pair, log = await play(simulator(), plan("client_first", hold_music=True, hold_music_class="sales"))
    assert pair == (200, 200)
    assert steps(log) == [
        "dial:client",
        "say:client",  # "stay on the line"
        "hold music on:client",
        "dial:operator",
        "say:operator",
        "key:operator",
        "hold music off:client",
        "bridge:90",
    ]
    assert ("hold music on", "client", "sales") in log


async def test_client_first_with_music_and_a_notice_for_both():
    pair, log = await play(simulator(), plan("client_first", hold_music=True, recorded_notice="both"))
    assert pair == (200, 200)
    tail = log[steps(log).index("key:operator") + 1 :]
    # the two hear the notice at once; the client's music ends before theirs starts
    assert ("say", "operator", NOTICE, "female") in tail and ("say", "client", NOTICE, "female") in tail
    assert tail.index(("hold music off", "client")) < tail.index(("say", "client", NOTICE, "female"))
    assert tail[-1][0] == "bridge"


async def test_only_the_operator_hears_the_notice_while_the_client_keeps_the_music():
    pair, log = await play(simulator(), plan("client_first", hold_music=True, recorded_notice="operator"))
    assert pair == (200, 200)
    assert steps(log)[-3:] == ["say:operator", "hold music off:client", "bridge:90"]


async def test_no_music_in_operator_first_or_when_off_and_no_notice_without_text():
    for attempt in (plan(hold_music=True, recorded_notice="both", notice=""), plan("client_first")):
        pair, log = await play(simulator(), attempt)
        assert pair == (200, 200)
        assert not [s for s in log if s[0].startswith("hold music")]
        assert not [s for s in log if s[0] == "say" and s[2] == NOTICE]


@pytest.mark.parametrize(
    ("rule", "pair"),
    [
        (
            {"leg": "operator", "suffix": "4567", "status": 486},
            (486, 200),
        ),  # busy operator: the music ends with the call
        ({"leg": "client", "suffix": "4567", "hangs_up_after": 8}, (487, 204)),  # the client leaves during the music
    ],
)
async def test_the_status_pairs_hold_with_music_and_notice_on(rule, pair):
    got, log = await play(simulator(rule), plan("client_first", hold_music=True, recorded_notice="both"))
    assert got == pair
    assert ("hold music on", "client", "default") in log
    assert not [s for s in log if s[0] == "bridge"]


async def test_the_client_hanging_up_during_the_notice_gives_200_204():
    rule = {"leg": "client", "suffix": "4567", "hangs_up_after": 4.0}
    pair, log = await play(simulator(rule), plan(recorded_notice="client"))
    assert pair == (200, 204)
    assert ("say", "client", NOTICE, "female") in log


# --------------------------------------------------------------------------- end to end
@pytest.fixture
async def live(perezvon_app):
    from live_helpers import live_server

    app = create_app(perezvon_app, manage_lifecycle=False)
    async with live_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


def simulated(perezvon_app, client_phone: str) -> list[tuple]:
    backend = perezvon_app.host.telephony_backend()
    return [log for log in backend.recent if any(step[:3] == ("dial", "client", client_phone) for step in log)]


@pytest.mark.parametrize("record", [True, False])
async def test_the_connections_settings_reach_the_pbx(
    perezvon_app, live, perezvon_site, perezvon_run_jobs, new_phone, record
):
    await Connection.filter(id=perezvon_site.id).update(
        telephony={
            "first_direction": "client_first",
            "record": record,
            "recorded_notice": "client",
            "hold_music": True,
            "hold_music_class": "sales",
        }
    )
    phone = new_phone()
    lead = {"token": perezvon_site.token, "phone": phone, "consent": True}
    assert (await live.post("/api/v1/leads", json=lead)).status_code == 201
    await perezvon_run_jobs()
    [log] = simulated(perezvon_app, phone)
    assert ("hold music on", "client", "sales") in log and ("hold music off", "client") in log
    # nobody is told the conversation is recorded when it is not
    assert [s[1] for s in log if s[0] == "say" and s[2] == NOTICE] == (["client"] if record else [])
    assert log[-1][0] == "bridge" and log[-1][2] is record


# --------------------------------------------------------------------------- the admin
async def test_the_telephony_tab_edits_both_settings_and_refuses_bad_ones(perezvon_client):
    project = await Project.create(name="Announcements project")
    connection = await Connection.create(project=project, domain=f"ann-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(perezvon_client, await make_user(level="edit", project=project))
    url = f"/connections/{connection.id}/settings/telephony"
    page = await perezvon_client.get(url)
    assert page.status_code == 200
    for text in ("Предупреждение «разговор записывается»", "Музыка ожидания", "Класс музыки ожидания", "Оба"):
        assert text in page.text
    form = {
        "csrf_token": csrf,
        "first_direction": "client_first",
        "call_client.key": "1",
        "connect.on": "on",
        "connect.key": "1",
        "cancel_client.key": "2",
        "cancel_operator.key": "9",
        "repeat_info.key": "0",
        "record": "on",
        "rows": "0",
    }
    bad_class = await perezvon_client.post(
        url, data={**form, "recorded_notice": "both", "hold_music": "on", "hold_music_class": "jazz; Hangup()"}
    )
    assert bad_class.status_code == 400
    assert "Имя класса музыки ожидания: от 1 до 79 латинских букв, цифр, _ или -." in bad_class.text
    bad_choice = await perezvon_client.post(url, data={**form, "recorded_notice": "everyone"})
    assert bad_choice.status_code == 400
    for bad in ("", "sales\n", "x" * 80, "музыка"):  # a newline would end the AMI header it is sent in
        refused = await perezvon_client.post(url, data={**form, "hold_music_class": bad})
        assert refused.status_code == 400, bad
    assert (await Connection.get(id=connection.id)).telephony == {}  # nothing saved
    ok = await perezvon_client.post(
        url, data={**form, "recorded_notice": "both", "hold_music": "on", "hold_music_class": "sales-queue"}
    )
    assert ok.status_code == 303
    saved = (await Connection.get(id=connection.id)).telephony
    assert (saved["recorded_notice"], saved["hold_music"], saved["hold_music_class"]) == ("both", True, "sales-queue")
    perezvon_client.cookies.set(LANG_COOKIE, "en")
    english = await perezvon_client.get(url)
    assert "Recorded call notice" in english.text and "Hold music class" in english.text


def test_the_settings_default_to_no_notice_and_no_music_with_the_default_class():
    loaded = TelephonySettingsSchema().load({})
    assert (loaded["recorded_notice"], loaded["hold_music"], loaded["hold_music_class"]) == ("nobody", False, "default")
