"""One visitor's bad lead never costs another visitor theirs (issue 13, item 1; docs/calls.md#what-the-stores-can-hold).

Real concurrency against a real server: 200 valid leads and poisoned ones posted
at once to uvicorn on a real port, so the intake writes them in shared groups.
Two defences are tested: the edge guard refuses the known poisons (422), and,
with the guard taken away, the group write isolates the row the database
refuses, so every valid lead is still stored and answered 201.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from live_helpers import live_server

from perezvon.core.models import Call, Lead
from perezvon.core.schemas import LeadSchema
from perezvon.web.app import create_app

VALID = 200


def poisons(site) -> list[str]:
    """Bodies (JSON text, escapes kept) that the stores cannot hold, each with its own number."""
    base = {"token": site.token, "consent": True}
    return [
        json.dumps({**base, "phone": "+79990000001", "name": "a\x00b"}),
        json.dumps({**base, "phone": "+79990000002", "name": "a\ud800b"}),
        json.dumps({**base, "phone": "+79990000003", "extra": {"k": "\udfff"}}),
        json.dumps({**base, "phone": "+79990000004", "extra": {"x": 1e999}}),
        json.dumps({**base, "phone": "+79990000005", "preferred_at": "0001-01-01T00:00:00+14:00"}),
        json.dumps({**base, "phone": "+79990000006", "preferred_at": "9999-12-31T23:59:59-14:00"}),
    ]


async def _post_all(base_url: str, site, new_phone, bodies: list[str]) -> tuple[list[str], list[httpx.Response], list]:
    phones = [new_phone() for _ in range(VALID)]
    valid = [json.dumps({"token": site.token, "phone": phone, "consent": True, "name": "Иван"}) for phone in phones]
    mixed = []
    step = VALID // len(bodies) if bodies else VALID + 1
    for n, body in enumerate(valid):  # poisons spread through the valid ones, so they share groups
        mixed.append(("valid", body))
        if bodies and n % step == step // 2:
            mixed.append(("poison", bodies.pop()))
    limits = httpx.Limits(max_connections=len(mixed), max_keepalive_connections=len(mixed))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        answers = await asyncio.gather(
            *[
                client.post("/api/v1/leads", content=body, headers={"Content-Type": "application/json"})
                for _, body in mixed
            ]
        )
    kinds = [kind for kind, _ in mixed]
    return phones, answers, kinds


async def test_poisoned_leads_are_refused_and_every_valid_one_is_stored(perezvon_app, perezvon_site, new_phone):
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base_url:
        phones, answers, kinds = await _post_all(base_url, perezvon_site, new_phone, poisons(perezvon_site))
    valid = [a.status_code for a, kind in zip(answers, kinds) if kind == "valid"]
    refused = [a.status_code for a, kind in zip(answers, kinds) if kind == "poison"]
    assert valid == [201] * VALID
    assert len(refused) == 6 and set(refused) <= {400, 422}  # 400: `Infinity` is not JSON; 422: by field
    assert await Lead.filter(connection_id=perezvon_site.id, phone__in=phones).count() == VALID
    assert await Call.filter(connection_id=perezvon_site.id).count() == VALID
    assert not await Lead.filter(phone__startswith="+7999000000").exists()


async def test_without_the_guard_the_group_write_isolates_the_bad_row(
    perezvon_app, perezvon_site, new_phone, monkeypatch
):
    """A value the guard does not catch (here: the guard taken away) and the database refuses -- a lone
    surrogate cannot be encoded by either driver -- fails only its own lead."""
    monkeypatch.setattr(LeadSchema, "_storable", lambda self, data, **kwargs: None)
    base = {"token": perezvon_site.token, "consent": True}
    bodies = [json.dumps({**base, "phone": f"+7999000001{n}", "name": "a\ud800b", "extra": {"n": n}}) for n in range(4)]
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base_url:
        phones, answers, kinds = await _post_all(base_url, perezvon_site, new_phone, bodies)
    valid = [a.status_code for a, kind in zip(answers, kinds) if kind == "valid"]
    refused = [a for a, kind in zip(answers, kinds) if kind == "poison"]
    assert valid == [201] * VALID
    assert [a.status_code for a in refused] == [422] * 4
    assert all("_schema" in a.json()["errors"] for a in refused)
    assert await Lead.filter(connection_id=perezvon_site.id, phone__in=phones).count() == VALID
    assert await Call.filter(connection_id=perezvon_site.id).count() == VALID


async def test_a_group_that_fails_for_the_database_is_not_split(perezvon_app, perezvon_site, new_phone, monkeypatch):
    """The database down is not a bad row: everyone is told to try again at once (503), nobody is split
    into a thousand single-row transactions."""
    from perezvon.core.intake import LeadIntake

    tries = []

    async def database_down(self, group):
        tries.append(len(group))
        raise ConnectionError("database went away")

    monkeypatch.setattr(LeadIntake, "_insert", database_down)
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base_url:
        _, answers, _ = await _post_all(base_url, perezvon_site, new_phone, [])
    assert [a.status_code for a in answers] == [503] * VALID
    assert sum(tries) == VALID  # each lead was in exactly one failed write


async def test_when_no_row_at_all_can_be_written_nobody_is_told_their_input_is_bad(
    perezvon_app, perezvon_site, new_phone, monkeypatch
):
    """Every row refused, each on its own (a broken schema, a bug of ours): "try again" (503) for all,
    never 422 -- a visitor told their input is wrong would not send it again."""
    from perezvon.core.intake import RowInserter

    async def refuses_everything(self, rows):
        raise ValueError("this column does not take that")

    monkeypatch.setattr(RowInserter, "execute", refuses_everything)
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base_url:
        _, answers, _ = await _post_all(base_url, perezvon_site, new_phone, [])
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {503, 422} and statuses.count(503) >= VALID - 8  # a lone lead in a group is 422
