"""The callback scenario (docs/calls.md#the-callback-scenario) played against the simulator's phones."""

import dataclasses

import pytest

from perezvon.core import announcements, scenario
from perezvon.core.registry import AttemptPlan, AttemptProgress
from perezvon.core.schemas import AnnouncementSettingsSchema, TelephonySettingsSchema
from perezvon.core.statuses import classify
from perezvon.plugins.simulator.backend import SimulatedTelephony
from perezvon.plugins.simulator.schemas import SimulatorSettings

OPERATOR, CLIENT = "+74951234567", "+79161234567"


class Progress(AttemptProgress):
    def __init__(self):
        self.dialled = []

    async def leg_dialled(self, leg):
        self.dialled.append(leg)


def backend(*rules, **settings):
    return SimulatedTelephony(
        SimulatorSettings().load(
            {"speed": 200, "ring_seconds": 5, "talk_seconds": 90, "rules": list(rules), **settings}
        )
    )


def plan(direction="operator_first", extension="", **telephony):
    settings = TelephonySettingsSchema().load(telephony)
    return AttemptPlan(
        call_id="c",
        attempt_number=1,
        direction=direction,
        operator_number=OPERATOR,
        operator_extension=extension,
        client_number=CLIENT,
        caller_id_to_operator=CLIENT,
        caller_id_to_client=OPERATOR,
        operator_text="Обратный звонок с сайта Тест.",
        client_text="Здравствуйте! Оставайтесь на линии.",
        telephony=settings,
    )


async def play(sim, attempt):
    progress = Progress()
    outcome = await sim.place_attempt(attempt, progress)
    return outcome, sim.recent[-1], progress


def steps(log):
    return [entry[0] + ":" + str(entry[1]) for entry in log]


async def test_operator_first_success_in_order():
    outcome, log, progress = await play(backend(), plan(extension="105"))
    assert (outcome.operator_status, outcome.client_status, outcome.conversation_seconds) == (200, 200, 90)
    assert steps(log) == [
        "dial:operator",
        "dtmf:operator",
        "say:operator",
        "key:operator",
        "dial:client",
        "say:client",  # the "to the client" parts, before the two are joined
        "bridge:90",
    ]
    assert log[1] == ("dtmf", "operator", "105")
    assert log[4] == ("dial", "client", CLIENT, OPERATOR)  # the client sees the operator's number
    assert progress.dialled == ["operator", "client"]
    assert classify(200, 200)[0] == "successful"


@pytest.mark.parametrize("status", [486, 480, 603, 404])
async def test_operator_leg_failures_never_ring_the_client(status):
    outcome, log, _ = await play(backend({"leg": "operator", "suffix": "4567", "status": status}), plan())
    assert (outcome.operator_status, outcome.client_status) == (status, None)
    assert steps(log) == ["dial:operator"]
    assert classify(status, None)[0] == "failed"


@pytest.mark.parametrize("status", [486, 480, 603, 404])
async def test_client_leg_failures(status):
    outcome, _, _ = await play(backend({"leg": "client", "suffix": "4567", "status": status}), plan())
    assert (outcome.operator_status, outcome.client_status) == (200, status)
    assert classify(200, status)[0] == "unsuccessful"


async def test_no_key_in_time_interrupts_with_202_or_rings_the_client_anyway():
    silent = {"leg": "operator", "suffix": "4567", "presses": ""}
    outcome, log, _ = await play(backend(silent), plan(operator_speak_seconds=10))
    assert (outcome.operator_status, outcome.client_status) == (202, None)
    assert "dial:client" not in steps(log)
    outcome, log, _ = await play(backend(silent), plan(operator_speak_seconds=10, interrupt_operator_call=False))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)


async def test_operator_cancels_with_201():
    outcome, log, _ = await play(backend({"leg": "operator", "suffix": "4567", "presses": "2"}), plan())
    assert (outcome.operator_status, outcome.client_status) == (201, None)
    assert classify(201, None)[0] == "cancelled"


async def test_repeat_info_says_the_details_again():
    outcome, log, _ = await play(backend({"leg": "operator", "suffix": "4567", "presses": "01"}), plan())
    assert steps(log).count("say:operator") == 2 and outcome.client_status == 200


async def test_without_the_call_client_command_the_client_is_rung_after_the_details():
    outcome, log, _ = await play(
        backend({"leg": "operator", "suffix": "4567", "presses": ""}), plan(call_client={"on": False, "key": "1"})
    )
    assert steps(log) == ["dial:operator", "say:operator", "dial:client", "say:client", "bridge:90"]
    assert outcome.client_status == 200


async def test_the_call_tracking_tag_follows_the_extension_and_operator_first_greets_the_client():
    tagged = dataclasses.replace(plan(extension="105"), operator_dtmf_tag="11")
    _, log, _ = await play(backend(), tagged)
    assert [entry for entry in log if entry[0] == "dtmf"] == [("dtmf", "operator", "105"), ("dtmf", "operator", "11")]
    assert steps(log)[:4] == ["dial:operator", "dtmf:operator", "dtmf:operator", "say:operator"]
    silent = dataclasses.replace(plan(), client_text="")  # no "to the client" part on: the operator greets
    _, log, _ = await play(backend(), silent)
    assert "say:client" not in steps(log)


async def test_the_client_hanging_up_during_the_greeting_is_204():
    outcome, _, _ = await play(backend({"leg": "client", "suffix": "4567", "hangs_up_after": 0.5}), plan())
    assert (outcome.operator_status, outcome.client_status) == (200, 204)


async def test_operator_hanging_up_during_the_details_is_204():
    outcome, _, _ = await play(backend({"leg": "operator", "suffix": "4567", "hangs_up_after": 1}), plan())
    assert (outcome.operator_status, outcome.client_status) == (204, None)
    assert classify(204, None) == ("lost", "the operator did not wait for the connection")


async def test_operator_hanging_up_while_the_client_rings_is_204():
    # the details take ~2 s, the key 1 s, the client rings 5 s: gone at 6 s
    # the client rings from ~3.9 to ~8.9 simulated seconds; slower time keeps the margins
    # (~2 simulated s) at ~100 ms real, so a loaded machine cannot move the hang-up out of them
    outcome, log, _ = await play(backend({"leg": "operator", "suffix": "4567", "hangs_up_after": 6}, speed=20), plan())
    assert (outcome.operator_status, outcome.client_status) == (204, 487)
    assert "dial:client" in steps(log)


async def test_voicemail_detection_gives_203_and_can_be_off():
    machine = {"leg": "client", "suffix": "4567", "machine": True}
    outcome, _, _ = await play(backend(machine), plan())
    assert (outcome.operator_status, outcome.client_status) == (200, 203)
    assert classify(200, 203)[0] == "unsuccessful"
    outcome, _, _ = await play(backend(machine), plan(detect_voicemail=False))
    assert outcome.client_status == 200


async def test_a_client_ending_the_talk_early_gives_its_real_length():
    outcome, _, _ = await play(backend({"leg": "client", "suffix": "4567", "hangs_up_after": 30}), plan())
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert 0 < outcome.conversation_seconds < 90


async def test_client_first_success_in_order():
    outcome, log, progress = await play(backend(), plan("client_first"))
    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert steps(log) == ["dial:client", "say:client", "dial:operator", "say:operator", "key:operator", "bridge:90"]
    assert progress.dialled == ["client", "operator"]


async def test_client_first_client_cancels_with_201():
    outcome, _, _ = await play(
        backend({"leg": "client", "suffix": "4567", "presses": "9"}),
        plan("client_first", cancel_operator={"on": True, "key": "9"}),
    )
    assert (outcome.operator_status, outcome.client_status) == (None, 201)
    assert classify(None, 201, "client_first")[0] == "cancelled"


async def test_client_first_client_not_waiting_for_the_operator_is_204():
    # the operator rings from ~3.4 to ~8.4 simulated seconds after the client answered
    outcome, _, _ = await play(
        backend({"leg": "client", "suffix": "4567", "hangs_up_after": 6}, speed=20), plan("client_first")
    )
    assert (outcome.operator_status, outcome.client_status) == (487, 204)
    assert classify(487, 204, "client_first") == ("lost", "the client did not wait for the connection")


async def test_client_first_failures():
    outcome, _, _ = await play(backend({"leg": "client", "suffix": "4567", "status": 480}), plan("client_first"))
    assert (outcome.operator_status, outcome.client_status) == (None, 480)
    assert classify(None, 480, "client_first")[0] == "unsuccessful"
    outcome, _, _ = await play(backend({"leg": "operator", "suffix": "4567", "status": 486}), plan("client_first"))
    assert (outcome.operator_status, outcome.client_status) == (486, 200)
    assert classify(486, 200, "client_first")[0] == "failed"


def test_caller_id_substitution_rules():
    defaults = TelephonySettingsSchema().load({})
    pick = lambda **kw: scenario.choose_caller_ids(  # noqa: E731
        TelephonySettingsSchema().load(kw), client=CLIENT, operator=OPERATOR, displayed_on_site="+74957770000"
    )
    assert scenario.choose_caller_ids(defaults, client=CLIENT, operator=OPERATOR, displayed_on_site="") == (
        CLIENT,
        OPERATOR,
    )
    assert pick(never_substitute_to_operator=True) == ("", OPERATOR)
    assert pick(show_client_number_to_operator=False, show_operator_number_to_client=False) == ("", "")
    assert pick(show_tracking_number_to_client=True) == (CLIENT, "+74957770000")
    assert pick(custom_operator_number="8 495 111-22-33", show_tracking_number_to_client=True) == (
        CLIENT,
        "+74951112233",
    )


def test_announcements_follow_the_switches():
    facts = announcements.LeadFacts(
        site="Автосалон", office="Центр", department="Продажи", client_name="Анна", rule="Акция <b>КАСКО</b>"
    )
    full = AnnouncementSettingsSchema().load({"extra_to_operator": "Клиент ждёт."})
    text = announcements.for_operator(facts, full, key_prompt=announcements.key_prompt("1", "позвонить клиенту"))
    assert text == (
        "Обратный звонок с сайта Автосалон. Офис: Центр. Отдел: Продажи. Клиент: Анна. "
        "Правило: Акция b КАСКО b. Клиент ждёт. Нажмите 1, чтобы позвонить клиенту."
    )
    bare = AnnouncementSettingsSchema().load(
        {
            "site_to_operator": False,
            "office_to_operator": False,
            "department_to_operator": False,
            "name_to_operator": False,
            "rule_to_operator": False,
        }
    )
    assert announcements.for_operator(facts, bare) == "Обратный звонок."
    to_client = announcements.for_client(facts, AnnouncementSettingsSchema().load({"name_to_client": True}))
    assert to_client.startswith("Здравствуйте, Анна! Вы заказали обратный звонок на сайте Автосалон.")


def test_visitor_text_is_made_safe_to_say():
    assert announcements.speakable("Иван\r\n; rm -rf / `x` $(y)") == "Иван ; rm -rf x (y)"
    assert len(announcements.speakable("я" * 500)) == 120


# --- the simulator's recording ------------------------------------------------------------------


@dataclasses.dataclass
class CoreSettings:
    data_dir: object


@pytest.mark.parametrize("talk, seconds", [(90, 5.0), (3, 3.0)])
async def test_a_recorded_conversation_leaves_a_wav_in_the_storage(tmp_path, talk, seconds):
    import wave

    sim = SimulatedTelephony(
        SimulatorSettings().load({"speed": 200, "ring_seconds": 5, "talk_seconds": talk}), CoreSettings(tmp_path)
    )
    outcome, log, _ = await play(sim, plan())
    assert log[-1] == ("bridge", talk, True)
    stored = outcome.recording
    assert stored is not None and stored.is_file() and stored.name == "c-1.wav"
    assert stored.is_relative_to(tmp_path / "recordings")  # moved into the storage, by year/month/day
    with wave.open(str(stored)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == int(8000 * seconds)  # a second a simulated second, at most 5 s


async def test_no_recording_when_the_connection_does_not_record_or_nobody_talked(tmp_path):
    sim = SimulatedTelephony(SimulatorSettings().load({"speed": 200, "ring_seconds": 5}), CoreSettings(tmp_path))
    outcome, _, _ = await play(sim, plan(record=False))
    assert outcome.conversation_seconds > 0 and outcome.recording is None
    busy = SimulatedTelephony(
        SimulatorSettings().load(
            {"speed": 200, "ring_seconds": 5, "rules": [{"leg": "client", "suffix": "4567", "status": 486}]}
        ),
        CoreSettings(tmp_path),
    )
    outcome, _, _ = await play(busy, plan())
    assert outcome.client_status == 486 and outcome.recording is None
    assert not (tmp_path / "recordings").exists()
