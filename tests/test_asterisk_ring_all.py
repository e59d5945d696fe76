"""Ring-all on the Asterisk backend over the AMI emulator (docs/calls.md#operator-lines): every operator
line is originated at once, the first to answer takes the call, the others are hung up."""

from __future__ import annotations

import dataclasses

import test_asterisk as base
from ami_emulator import Behaviour
from test_asterisk import CLIENT, Progress, agi_commands, operator_presses, plan, run

# the AMI emulator and the backend on it, as tests/test_asterisk.py makes them
emulator, backend, speech = base.emulator, base.backend, base.speech

LINES = ("+74951230001", "+74951230002", "+74951230003")


class Answered(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.answered: list[str] = []

    async def operator_answered(self, number: str) -> None:
        self.answered.append(number)


def ring_all_plan(**telephony):
    base = plan(**telephony)
    return dataclasses.replace(
        base,
        operator_number=LINES[0],
        ring_all=((LINES[0], ""), (LINES[1], "21"), (LINES[2], "")),
    )


async def test_the_first_line_to_answer_takes_the_call_and_the_others_are_hung_up(emulator, backend):
    emulator.set_behaviour(LINES[0][1:], Behaviour.busy())
    emulator.set_behaviour(LINES[1][1:], operator_presses("1"))  # answers after 1 s
    emulator.set_behaviour(LINES[2][1:], Behaviour.answers(30.0))  # would answer much later
    emulator.set_behaviour(CLIENT[1:], Behaviour.human(1.0, hangup_after=60))
    progress = Answered()
    outcome = await run(backend, ring_all_plan(), progress)

    assert (outcome.operator_status, outcome.client_status) == (200, 200)
    assert outcome.operator_number == LINES[1] and progress.answered == [LINES[1]]
    originates = emulator.actions("Originate")
    assert [o.get_ci("Channel") for o in originates] == [
        "PJSIP/74951230001@trunk",
        "PJSIP/74951230002@trunk",
        "PJSIP/74951230003@trunk",
        "PJSIP/79161234567@trunk",
    ]
    ids = [o.get_ci("ChannelId") for o in originates]
    assert [i[-2:] for i in ids[:3]] == ["o0", "o1", "o2"] and ids[3].endswith("c")
    hangups = [(a.get_ci("Channel"), a.get_ci("Cause")) for a in emulator.actions("Hangup")]
    third = next(c.name for c in emulator.hungup_channels if c.uniqueid == ids[2])
    assert (third, "26") in hangups  # the line still ringing was cancelled: answered elsewhere
    assert "EXEC SendDTMF 21" in agi_commands(emulator, "o1")  # the extension of the line that answered
    assert not emulator.channels  # nothing left up


async def test_when_no_line_answers_the_first_lines_status_makes_the_pair(emulator, backend):
    emulator.set_behaviour(LINES[0][1:], Behaviour.busy())
    emulator.set_behaviour(LINES[1][1:], Behaviour.declines(0.5))
    emulator.set_behaviour(LINES[2][1:], Behaviour.unavailable())
    progress = Answered()
    outcome = await run(backend, ring_all_plan(), progress)
    assert (outcome.operator_status, outcome.client_status, outcome.operator_number) == (486, None, "")
    assert progress.answered == [] and len(emulator.actions("Originate")) == 3  # the client is never rung
    assert not emulator.channels
