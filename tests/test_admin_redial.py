"""The redial matrix on the Telephony tab: built-in rules as rows, overrides, reset, the plain-words preview.

Over real HTTP (the app, its database and Redis from core/testing.py); the preview is compared
with what the worker really does with a lead whose client is always busy (docs/calls.md#the-redial-matrix).
"""

from __future__ import annotations

import datetime as dt
import itertools
import tempfile
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_admin_browser import live_admin, sign_in  # noqa: F401 -- live_admin is a fixture
from test_admin_helpers import login, make_user
from test_callbacks import post_lead

from perezvon.core import redial
from perezvon.core.models import Attempt, Call, CallState, Connection, OperatorNumber, Project
from perezvon.core.queue import QUEUES

#: full-page screenshots of the tab, to look at (never tracked files)
SHOTS = Path(tempfile.gettempdir()) / "perezvon-redial-screenshots"
SHOTS.mkdir(exist_ok=True)
EN, RU = {"Accept-Language": "en"}, {"Accept-Language": "ru"}


class FormValues(HTMLParser):
    """What a browser would send for one form: inputs (checked boxes only) and selected options."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.values = form_id, False, {}
        self._select: str | None = None
        self._first_option: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "disabled" in a:
            return
        if tag == "input" and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
            self.values[a["name"]] = a.get("value") or ("on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select, self._first_option = a.get("name"), None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
                self.values.setdefault(self._select, self._first_option)
            if "selected" in a:
                self.values[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None


def form_of(html: str, form_id: str = "telephony-form") -> dict[str, str]:
    parser = FormValues(form_id)
    parser.feed(html)
    return parser.values


def rows_of(form: dict[str, str]) -> dict[tuple[str, str, str], int]:
    """(chain, redial, pair) -> the row's index in the form."""
    return {
        (form[f"m{i}_chain"], form[f"m{i}_number"], form[f"m{i}_pair"]): i
        for i in range(int(form["rows"]))
        if form.get(f"m{i}_pair")
    }


async def _editor(client, level="edit"):
    project = await Project.create(name="Redial project")
    connection = await Connection.create(project=project, domain=f"redial-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(client, await make_user(level=level, project=project))
    return connection, csrf


async def test_the_page_lists_every_built_in_rule_in_words(perezvon_client):
    connection, _ = await _editor(perezvon_client)
    page = await perezvon_client.get(f"/connections/{connection.id}/settings/telephony", headers=EN)
    assert page.status_code == 200
    rows = rows_of(form_of(page.text))
    for chain in ("operator_first", "client_first"):
        for pair in redial.DEFAULT_MATRIX:
            assert (chain, "*", pair) in rows, (chain, pair)
    assert page.text.count(">built-in<") == 2 * len(redial.DEFAULT_MATRIX)
    assert "operator: busy (486); client: any status" in page.text
    assert "operator: answered (200); client: voicemail (203)" in page.text
    ru = await perezvon_client.get(f"/connections/{connection.id}/settings/telephony", headers=RU)
    assert "оператор: занято (486); клиент: любой статус" in ru.text and "встроенное" in ru.text


async def test_editing_one_row_stores_one_override_and_reset_removes_it(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/telephony"
    form = form_of((await perezvon_client.get(url)).text)
    assert form["csrf_token"] == csrf
    untouched = await perezvon_client.post(url, data=form)
    assert untouched.status_code == 303
    assert (await Connection.get(id=connection.id)).redial_matrix == {}  # the built-in rules are not copied
    row = rows_of(form)[("operator_first", "*", "486-*")]
    form[f"m{row}_period"] = "300"
    assert (await perezvon_client.post(url, data=form)).status_code == 303
    saved = await Connection.get(id=connection.id)
    assert saved.redial_matrix == {"operator_first": {"*": {"486-*": {"period": 300, "direction": "operator_first"}}}}
    # the engine applies it, and every other built-in rule stays in force
    assert redial.next_step(
        saved.redial_matrix, chain_started="operator_first", next_number=3, operator=486, client=None
    ) == redial.NextStep(300, "operator_first")
    assert redial.next_step(
        saved.redial_matrix, chain_started="operator_first", next_number=2, operator=200, client=486
    ) == redial.NextStep(180, "operator_first")
    page = await perezvon_client.get(url, headers=EN)
    assert page.text.count(">built-in<") == 2 * len(redial.DEFAULT_MATRIX) - 1 and ">changed<" in page.text
    assert 'value="operator_first|486-*"' in page.text  # its reset button
    reset = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "reset_rule", "rule": "operator_first|486-*"}
    )
    assert reset.status_code == 303
    assert (await Connection.get(id=connection.id)).redial_matrix == {}


async def test_new_rules_for_one_redial_or_every_redial(perezvon_client):
    connection, csrf = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/telephony"
    form = form_of((await perezvon_client.get(url)).text)
    count = int(form["rows"])
    new = [i for i in range(count) if form[f"m{i}_origin"] == "new"]
    assert len(new) == 2
    form.update({f"m{new[0]}_pair": "200-603", f"m{new[0]}_number": "3", f"m{new[0]}_action": "abort"})
    form.update({f"m{new[1]}_chain": "client_first", f"m{new[1]}_pair": "*-408", f"m{new[1]}_period": "45"})
    assert (await perezvon_client.post(url, data=form)).status_code == 303
    assert (await Connection.get(id=connection.id)).redial_matrix == {
        "operator_first": {"3": {"200-603": "abort"}},
        "client_first": {"*": {"*-408": {"period": 45, "direction": "client_first"}}},
    }
    again = form_of((await perezvon_client.get(url)).text)
    rows = rows_of(again)
    assert again[f"m{rows[('operator_first', '3', '200-603')]}_origin"] == "added"
    i = rows[("operator_first", "3", "200-603")]
    again[f"m{i}_pair"] = ""  # cleared: deleted
    assert (await perezvon_client.post(url, data=again)).status_code == 303
    assert (await Connection.get(id=connection.id)).redial_matrix == {
        "client_first": {"*": {"*-408": {"period": 45, "direction": "client_first"}}}
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pair", "486", "A status pair looks like 486-* or 200-480."),
        ("pair", "busy-*", "A status pair looks like 486-* or 200-480."),
        ("period", "-5", "The period is whole seconds, up to a week."),
        ("period", "604801", "The period is whole seconds, up to a week."),
        ("period", "9" * 5000, "The period is whole seconds, up to a week."),
        ("period", "1e9", "The period is whole seconds, up to a week."),
        ("period", "", "The period is whole seconds, up to a week."),
        ("number", "7", "Redials are numbered 2 to 5."),
        ("chain", "sideways", "Unknown chain: use operator_first or client_first."),
    ],
)
async def test_a_bad_row_gets_its_own_error_never_a_500(perezvon_client, field, value, message):
    connection, _ = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/telephony"
    form = form_of((await perezvon_client.get(url)).text)
    new = next(i for i in range(int(form["rows"])) if form[f"m{i}_origin"] == "new")
    form.update({f"m{new}_pair": "200-480", f"m{new}_period": "30", f"m{new}_{field}": value})
    answer = await perezvon_client.post(url, data=form, headers=EN)
    assert answer.status_code == 400
    assert message in answer.text and 'class="rule-new has-error"' in answer.text
    assert (await Connection.get(id=connection.id)).redial_matrix == {}
    preview = await perezvon_client.post(url + "/preview", data=form, headers=EN)
    assert preview.status_code == 200 and preview.json()["has_problems"] is True


async def test_the_preview_follows_the_unsaved_form(perezvon_client):
    connection, _ = await _editor(perezvon_client)
    url = f"/connections/{connection.id}/settings/telephony"
    form = form_of((await perezvon_client.get(url)).text)
    before = (await perezvon_client.post(url + "/preview", data=form, headers=EN)).json()
    busy = next(s for s in before["scenarios"] if s["key"] == "client_busy")
    assert [a["at_seconds"] for a in busy["attempts"]] == [0, 180, 360, 540, 720]
    assert busy["final_text"].startswith("Final status «Unsuccessful»") and "12 min" in busy["final_text"]
    form[f"m{rows_of(form)[('operator_first', '*', '200-486')]}_action"] = "abort"
    after = (await perezvon_client.post(url + "/preview", data=form, headers=RU)).json()
    busy = next(s for s in after["scenarios"] if s["key"] == "client_busy")
    assert [a["at_seconds"] for a in busy["attempts"]] == [0]
    assert "«Неуспешный»" in busy["final_text"] and "попыток: 1" in busy["final_text"]
    assert (await Connection.get(id=connection.id)).redial_matrix == {}  # the preview saves nothing


async def _advance_redials(app) -> None:
    """Make the queued attempts due now: the worker then takes the redial the matrix scheduled.

    Only attempts: a cron job (the sweep) made due early would run, end, and be queued again
    for its own time, where arq's in-progress mark of its run keeps it from starting for a minute.
    """
    now_ms = int(time.time() * 1000)
    for queue in QUEUES:
        for job_id in await app.redis.zrange(queue, 0, -1):
            if job_id.startswith(b"attempt:"):
                await app.redis.zadd(queue, {job_id: now_ms}, xx=True)


@pytest.mark.parametrize(
    ("operator_phone", "ending", "scenario"),
    [("+74951234567", "0486", "client_busy"), ("+74951230486", "0001", "operator_busy")],
)
async def test_the_preview_of_the_default_rules_is_what_the_worker_does(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, operator_phone, ending, scenario
):
    await OperatorNumber.filter(connection_id=perezvon_site.id).update(phone=operator_phone)
    created = await post_lead(perezvon_client, perezvon_site, new_phone(ending))
    gaps = []
    for _ in range(redial.MAX_ATTEMPTS + 1):
        await perezvon_run_jobs()
        call = await Call.get(id=created["call_id"])
        if call.state == CallState.FINISHED:
            break
        last = await Attempt.filter(call_id=call.id).order_by("-number").first()
        gaps.append(round((call.next_attempt_at - last.ended_at) / dt.timedelta(seconds=1)))
        await _advance_redials(perezvon_app)
    attempts = await Attempt.filter(call_id=call.id).order_by("number")

    csrf = await login(perezvon_client, await make_user(level="view", connection=perezvon_site))
    shown = await perezvon_client.post(
        f"/connections/{perezvon_site.id}/settings/telephony/preview",
        data={"csrf_token": csrf},
        headers=EN,
    )
    planned = next(s for s in shown.json()["scenarios"] if s["key"] == scenario)
    assert len(planned["attempts"]) == len(attempts) == call.attempts_made
    assert [(a["operator"], a["client"]) for a in planned["attempts"]] == [
        (a.operator_status, a.client_status) for a in attempts
    ]
    at = [a["at_seconds"] for a in planned["attempts"]]
    assert [b - a for a, b in itertools.pairwise(at)] == gaps
    assert planned["final_status"] == call.display_status


async def test_the_preview_follows_the_form_in_the_browser(perezvon_app, live_admin, page):  # noqa: F811

    project = await Project.create(name="Redial browser")
    connection = await Connection.create(project=project, domain=f"rb-{uuid.uuid4().hex[:8]}.example")
    user = await make_user(level="edit", project=project)
    await sign_in(page, live_admin, user.phone)
    await page.goto(f"{live_admin}/lang/en?next=/connections/{connection.id}/settings/telephony")
    busy = page.locator("#redial-preview [data-scenario=client_busy] .final")
    assert "12 min" in await busy.inner_text() and "attempts: 5" in await busy.inner_text()
    row = page.locator("tr.rule-built_in:has(input[value='200-486'])").first
    await row.locator("input[name$=_period]").fill("600")
    await page.wait_for_selector("#redial-preview [data-scenario=client_busy] .final:has-text('40 min')")
    await row.locator("select[name$=_action]").select_option("abort")
    await page.wait_for_selector("#redial-preview [data-scenario=client_busy] .final:has-text('attempts: 1')")
    assert (await Connection.get(id=connection.id)).redial_matrix == {}  # nothing saved by the preview
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.screenshot(path=str(SHOTS / "telephony-en.png"), full_page=True)
    await page.goto(f"{live_admin}/lang/ru?next=/connections/{connection.id}/settings/telephony")
    await page.screenshot(path=str(SHOTS / "telephony-ru.png"), full_page=True)


def test_a_changed_built_in_rule_leaves_the_others_in_force():
    changed = {"operator_first": {"*": {"*-*": {"period": 30}}}}
    assert redial.next_step(
        changed, chain_started="operator_first", next_number=2, operator=200, client=480
    ) == redial.NextStep(30, "operator_first")
    assert redial.next_step(changed, chain_started="operator_first", next_number=2, operator=404, client=None) is None
    assert redial.next_step(
        changed, chain_started="operator_first", next_number=2, operator=486, client=None
    ) == redial.NextStep(60, "operator_first")
    assert redial.next_step(  # the other chain keeps the built-in rule
        changed, chain_started="client_first", next_number=2, operator=None, client=480
    ) == redial.NextStep(120, "operator_first")
    # a rule for one redial is still consulted before all of them
    one_redial = {"operator_first": {"*": {"486-*": {"period": 30}}, "3": {"*-*": "abort"}}}
    assert (
        redial.next_step(one_redial, chain_started="operator_first", next_number=3, operator=486, client=None) is None
    )
    assert redial.validate_matrix(one_redial) is one_redial


async def test_a_viewer_sees_the_rules_but_cannot_change_them(perezvon_client):
    project = await Project.create(name="Redial viewer")
    connection = await Connection.create(
        project=project,
        domain=f"rv-{uuid.uuid4().hex[:8]}.example",
        redial_matrix={"operator_first": {"*": {"486-*": {"period": 300, "direction": "operator_first"}}}},
    )
    csrf = await login(perezvon_client, await make_user(level="view", connection=connection))
    url = f"/connections/{connection.id}/settings/telephony"
    page = await perezvon_client.get(url, headers=EN)
    assert page.status_code == 200 and ">changed<" in page.text and "Reset to built-in" not in page.text
    assert 'name="m0_period" type="number" min="0" max="604800" value="' in page.text and "disabled" in page.text
    refused = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "reset_rule", "rule": "operator_first|486-*"}
    )
    assert refused.status_code == 403
    assert (await Connection.get(id=connection.id)).redial_matrix["operator_first"]["*"]["486-*"]["period"] == 300
