"""Prepared reads (core/prepared.py): the same models as the ORM's own read, on either database."""

import datetime as dt
import uuid

import pytest
from tortoise.transactions import in_transaction

from perezvon.core.models import Attempt, Call, Lead, OperatorNumber
from perezvon.core.prepared import MAX_KEPT_LENGTH, PreparedRead, PreparedValues

CALL_WITH_SITE = PreparedRead(
    Call, lambda call_id: Call.filter(id=call_id).select_related("lead", "connection").limit(1), call_id="id"
)
CALLS = PreparedRead(Call, lambda ids: Call.filter(id__in=ids).select_related("lead"), ids="id")
LINES = PreparedRead(
    OperatorNumber,
    lambda connection_id, phone: OperatorNumber.filter(connection_id=connection_id, phone=phone),
    connection_id="connection_id",
    phone="phone",
)


def _fields(model) -> dict:
    return {name: getattr(model, name) for name in model._meta.db_fields}


async def _call(site, phone: str = "+79161230001") -> Call:
    now = dt.datetime.now(dt.UTC)
    lead = await Lead.create(connection=site, phone=phone, source="widget", created_at=now)
    return await Call.create(lead=lead, connection=site, created_at=now)


async def test_a_prepared_read_makes_the_models_the_orm_makes(perezvon_app, perezvon_site):
    call = await _call(perezvon_site)
    orm = await Call.filter(id=call.id).select_related("lead", "connection").first()
    for value in (call.id, str(call.id)):  # the id as a UUID or as text, as callers hold it
        prepared = await CALL_WITH_SITE.first(call_id=value)
        assert prepared is not None and orm is not None
        assert _fields(prepared) == _fields(orm)
        assert _fields(prepared.lead) == _fields(orm.lead)  # joined, not read again
        assert _fields(prepared.connection) == _fields(orm.connection)
    assert await CALL_WITH_SITE.first(call_id=uuid.uuid4()) is None


async def test_lists_of_every_length_and_several_arguments(perezvon_app, perezvon_site):
    calls = [await _call(perezvon_site, f"+7916123{n:04d}") for n in range(3)]
    for length in (0, 1, 3, MAX_KEPT_LENGTH + 1):  # the last one is built each time, not kept
        ids = [str(c.id) for c in calls[:length]] + [str(uuid.uuid4()) for _ in range(length - len(calls))]
        found = await CALLS.all(ids=ids)
        assert sorted(str(c.id) for c in found) == sorted(str(c.id) for c in calls[:length])
        assert all(c.lead.phone.startswith("+7916123") for c in found)
    await OperatorNumber.create(connection=perezvon_site, phone="+74950000001")
    lines = await LINES.all(connection_id=perezvon_site.id, phone="+74950000001")
    assert [n.phone for n in lines] == ["+74950000001"]
    assert await LINES.all(connection_id=perezvon_site.id, phone="+74950000002") == []


async def test_prepared_values_are_the_orm_values(perezvon_app, perezvon_site):
    call = await _call(perezvon_site)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for number in (2, 1):
        await Attempt.create(call=call, number=number, direction="operator_first", backend="sim", started_at=started)
    values = PreparedValues(
        Attempt,
        lambda call_id: (
            Attempt.filter(call_id=call_id).order_by("number").values_list("number", "started_at", "call_id")
        ),
        call_id="call_id",
    )
    orm = await Attempt.filter(call_id=call.id).order_by("number").values_list("number", "started_at", "call_id")
    assert await values.all(call_id=call.id) == orm
    assert [row[0] for row in orm] == [1, 2] and orm[0][1] == started  # converted: a datetime, not text
    flat = PreparedValues(
        Attempt, lambda call_id: Attempt.filter(call_id=call_id).values_list("id", flat=True), call_id="call_id"
    )
    with pytest.raises(TypeError, match="may not be flat"):
        await flat.all(call_id=call.id)


async def test_a_prepared_read_sees_the_transaction_it_runs_in(perezvon_app, perezvon_site):
    call = await _call(perezvon_site)
    reads = PreparedRead(Attempt, lambda call_id: Attempt.filter(call_id=call_id), call_id="call_id")
    async with in_transaction():
        await Attempt.create(
            call=call, number=1, direction="operator_first", backend="simulator", started_at=dt.datetime.now(dt.UTC)
        )
        assert [a.number for a in await reads.all(call_id=call.id)] == [1]


async def test_what_cannot_be_prepared_is_refused(perezvon_app):
    with pytest.raises(TypeError, match="takes call_id"):
        await CALL_WITH_SITE.all(id=uuid.uuid4())
    prefetching = PreparedRead(Call, lambda call_id: Call.filter(id=call_id).prefetch_related("attempts"), call_id="id")
    with pytest.raises(TypeError, match="may not prefetch"):
        await prefetching.all(call_id=uuid.uuid4())
    unused = PreparedRead(Call, lambda call_id: Call.all(), call_id="id")
    with pytest.raises(TypeError, match="not one of its parameters"):
        await unused.all(call_id=uuid.uuid4())
