"""The Calls table (docs/admin.md): grouping, filters, escaping, the detail panel, tags, recordings, .xlsx export."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import uuid

import openpyxl
from test_admin_helpers import login, make_call, make_user

from perezvon.core.models import Attempt, CallTag, Connection, Delivery, Project

MSK = dt.timezone(dt.timedelta(hours=3))


async def _site(name="Сайт") -> Connection:
    project = await Project.create(name="Calls project")
    return await Connection.create(project=project, domain=f"calls-{uuid.uuid4().hex[:8]}.example", name=name)


async def test_table_groups_by_day_newest_first_and_filters(perezvon_client):
    site = await _site()
    older = await make_call(
        site, phone="+79161110001", created_at=dt.datetime(2026, 3, 1, 10, 0, tzinfo=MSK), status="lost"
    )
    newer = await make_call(
        site, phone="+79161110002", created_at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=MSK), source="widget", channel="ads"
    )
    user = await make_user(level="view", connection=site)
    await login(perezvon_client, user)
    page = (await perezvon_client.get("/calls?date_from=2026-03-01&date_to=2026-03-02")).text
    assert page.index("02.03.2026") < page.index("+79161110002") < page.index("01.03.2026") < page.index("+79161110001")
    only_lost = (await perezvon_client.get("/calls?status=lost")).text
    assert "+79161110001" in only_lost and "+79161110002" not in only_lost
    by_phone = (await perezvon_client.get("/calls?phone=8 916 111-00-02")).text
    assert "+79161110002" in by_phone and "+79161110001" not in by_phone
    by_app = (await perezvon_client.get("/calls?app=widget")).text
    assert "+79161110002" in by_app and "+79161110001" not in by_app
    one_day = (await perezvon_client.get("/calls?date_from=2026-03-01&date_to=2026-03-01")).text
    assert "+79161110001" in one_day and "+79161110002" not in one_day
    bad = await perezvon_client.get("/calls?date_from=2026-03-05&date_to=2026-03-01")
    assert bad.status_code == 200 and ("before its start" in bad.text or "раньше" in bad.text)
    assert older.id != newer.id


async def test_pages_follow_a_cursor_without_repeats(perezvon_client):
    site = await _site()
    base = dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)
    phones = [f"+7916222{n:04d}" for n in range(60)]
    for n, phone in enumerate(phones):
        await make_call(site, phone=phone, created_at=base + dt.timedelta(minutes=n // 2))  # pairs share a time
    await login(perezvon_client, await make_user(level="view", connection=site))
    seen, url = [], f"/calls?connection={site.id}"
    while url:
        page = (await perezvon_client.get(url)).text
        seen += [p for p in phones if p in page]
        next_link = [part for part in page.split('href="') if part.startswith("/calls?") and "cursor=" in part]
        url = next_link[0].split('"')[0].replace("&amp;", "&") if next_link else None
    assert sorted(seen) == sorted(phones) and len(seen) == len(set(seen))


async def test_visitor_text_is_shown_as_text(perezvon_client):
    site = await _site()
    evil = '<script>alert("x")</script>'
    call = await make_call(
        site,
        phone="+79163330001",
        name=evil,
        page_url='https://x.example/"><img src=x onerror=1>',
        visit={"trigger": "<b>exit</b>"},
    )
    await login(perezvon_client, await make_user(level="view", connection=site))
    for url in ("/calls", f"/calls/{call.id}"):
        page = (await perezvon_client.get(url)).text
        assert evil not in page and "&lt;script&gt;alert(" in page
        assert "<img src=x" not in page and "<b>exit</b>" not in page


async def test_detail_panel_tags_chain_and_deliveries(perezvon_client, tmp_path):
    site = await _site()
    call = await make_call(site, phone="+79164440001", status="successful")
    now = dt.datetime.now(dt.UTC)
    await Attempt.create(
        call=call,
        number=1,
        direction="operator_first",
        started_at=now,
        operator_status=486,
        display_status="failed",
        reason="operator number: busy",
    )
    recording = tmp_path / "rec.wav"
    recording.write_bytes(b"RIFF0000WAVEfmt ")
    await Attempt.create(
        call=call,
        number=2,
        direction="operator_first",
        started_at=now,
        operator_status=200,
        client_status=200,
        duration_seconds=150,
        display_status="successful",
        reason="the callback took place",
        recording=str(recording),
    )
    call.recording = str(recording)
    await call.save(update_fields=["recording"])
    await Delivery.create(
        call=call, integration_key="metrika", event="lead_created", ok=False, status=503, response="Service Unavailable"
    )
    editor = await make_user(level="edit", connection=site)
    csrf = await login(perezvon_client, editor)
    page = (await perezvon_client.get(f"/calls/{call.id}")).text
    assert "486-—" in page and "200-200" in page and "Service Unavailable" in page
    assert "Яндекс Метрика" in page  # the integration by its plugin's title, in Russian from its catalog
    assert f'src="/calls/{call.id}/recording"' in page
    audio = await perezvon_client.get(f"/calls/{call.id}/recording?download=1")
    assert audio.status_code == 200 and audio.content == recording.read_bytes()
    assert "attachment" in audio.headers["content-disposition"]
    for name in ("перезвонить", "VIP", "VIP"):
        added = await perezvon_client.post(
            f"/calls/{call.id}/tags", data={"csrf_token": csrf, "action": "add", "name": name}
        )
        assert added.status_code == 303
    assert sorted(await CallTag.filter(call=call).values_list("name", flat=True)) == ["VIP", "перезвонить"]
    tagged = (await perezvon_client.get("/calls?tag=VIP")).text
    assert "+79164440001" in tagged
    await perezvon_client.post(f"/calls/{call.id}/tags", data={"csrf_token": csrf, "action": "clear"})
    assert not await CallTag.exists(call=call)


async def _wait_export(client, location: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        state = (await client.get(location + "/status")).json()
        if state["state"] != "running" or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def test_export_has_every_field_of_the_filtered_set(perezvon_client):
    site = await _site("Экспорт")
    wanted = await make_call(
        site,
        phone="+79165550001",
        name='=HYPERLINK("http://evil")',
        source="widget",
        channel="ads",
        utm_source="yandex",
        utm_campaign="spring",
        visit={"pages": 4, "seconds_on_site": 95, "trigger": "exit", "rule": "Скидки"},
        page_url="https://shop.example/cars",
    )
    await make_call(site, phone="+79165550002", status="lost")
    await CallTag.create(call=wanted, name="VIP")
    csrf = await login(perezvon_client, await make_user(level="view", connection=site))
    start = await perezvon_client.post(
        "/calls/export", data={"csrf_token": csrf, "status": "successful", "connection": str(site.id)}
    )
    assert start.status_code == 303
    location = start.headers["location"]
    progress_page = await perezvon_client.get(location)
    assert "export-progress" in progress_page.text
    state = await _wait_export(perezvon_client, location)
    assert state["state"] == "ready" and state["done"] == state["total"] == 1
    download = await perezvon_client.get(location + "/download")
    assert download.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    header, row = rows[0], dict(zip(rows[0], rows[1]))
    assert len(rows) == 2
    assert row[header[8]] == "+79165550001"  # client number
    assert (
        isinstance(rows[1][0], dt.datetime)
        and rows[1][0].date() == wanted.created_at.astimezone(__import__("zoneinfo").ZoneInfo(site.timezone)).date()
    )  # a real Excel date, not text
    assert rows[1][12] == 150 and rows[0][0] in ("Дата", "Date")  # numbers stay numbers
    values = set(map(str, rows[1]))
    for expected in (
        "yandex",
        "spring",
        "4",
        "95",
        "При уходе",
        "Скидки",
        "VIP",
        "https://shop.example/cars",
        site.domain,
    ):
        assert expected in values, expected
    assert '\'=HYPERLINK("http://evil")' in values  # a visitor's formula is text, never run by Excel
    # another user cannot read this export
    perezvon_client.cookies.clear()
    await login(perezvon_client, await make_user(level="view", connection=site))
    assert (await perezvon_client.get(location + "/download")).status_code == 404


async def test_dashboard_counts_the_filtered_calls(perezvon_client):
    site = await _site()
    day = dt.datetime(2026, 6, 3, 14, 30, tzinfo=MSK)  # a Wednesday, 14:00 Moscow
    await make_call(site, phone="+79166660001", created_at=day, channel="ads", source="widget")
    await make_call(site, phone="+79166660002", created_at=day, channel="ads", source="<img src=x>", status="lost")
    await make_call(site, phone="+79166660003", created_at=day - dt.timedelta(days=40), channel="social")
    await login(perezvon_client, await make_user(level="view", connection=site))
    page = (await perezvon_client.get(f"/dashboard?connection={site.id}&date_from=2026-06-01&date_to=2026-06-30")).text
    stats = page[page.index('class="stats"') : page.index('class="charts"')]
    assert [int(n) for n in __import__("re").findall(r'class="num">(\d+)<', stats)] == [2, 1, 1, 0]
    assert "<title>Ср 14:00 — 2</title>" in page or "<title>Wed 14:00 — 2</title>" in page
    assert "<img src=x>" not in page and "&lt;img src=x&gt;" in page


async def test_every_key_once_newest_first_across_connections(perezvon_app):
    """The merge that exports use: every call once, in the one global order, whatever the batch size."""
    from perezvon.core.call_filters import all_keys_newest_first, page_of_calls, parse_filters

    sites = [await _site(f"Merge {n}") for n in range(3)]
    base = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    calls = [
        await make_call(sites[n % 3], phone=f"+791699900{n:02d}", created_at=base + dt.timedelta(minutes=n // 4))
        for n in range(25)
    ]  # groups of four share a time across connections
    expected = sorted(((c.created_at, c.id) for c in calls), key=lambda k: (k[0], k[1].int), reverse=True)
    filters = parse_filters({})
    visible = [s.id for s in sites]
    for batch in (1, 4, 7, 100):
        got = [key async for keys in all_keys_newest_first(filters, visible, batch=batch) for key in keys]
        assert [k[1] for k in got] == [k[1] for k in expected], batch
    page, cursor = await page_of_calls(filters, visible, limit=10)
    assert [c.id for c in page] == [k[1] for k in expected[:10]] and cursor


async def test_export_file_every_field_and_order_across_connections(perezvon_app, tmp_path):
    """The export's own path (raw rows, merged connections, rows written as ready XML) read back by openpyxl."""
    from perezvon.core.call_filters import parse_filters
    from perezvon.core.models import Department, Office
    from perezvon.web.admin.export import COLUMNS, Exporter

    first, second = await _site("Первый & <второй>"), await _site("Другой")
    office = await Office.create(connection=first, name="-Офис")
    department = await Department.create(connection=first, name="Продажи")
    base = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    made = []
    for n in range(7):  # interleaved in time across the two connections
        site = first if n % 2 else second
        made.append(
            await make_call(
                site,
                phone=f"+7916555000{n}",
                created_at=base + dt.timedelta(minutes=n),
                name=f"Имя{n}\x07 <b>&amp;</b>",
            )
        )
    rich = await make_call(
        first,
        phone="+79165559999",
        created_at=base + dt.timedelta(hours=1),
        name="@SUM(A1)",
        office=office,
        department=department,
        utm_term="+79161112233",
        utm_content="+7 (916) x",
        preferred_at=dt.datetime(2026, 3, 11, 7, 30, tzinfo=dt.UTC),
        client_ip="10.0.0.1",
        visit={"pages": 2, "seconds_on_site": 40, "trigger": "exit", "rule": "=1+1", "scroll": 90},
        extra={"поле": "значение"},
        displayed_phone="+74950000000",
        visitor_id="v-1",
    )
    rich.finished_at = base + dt.timedelta(hours=1, minutes=3)
    rich.recording = "rec.wav"
    await rich.save()
    await Attempt.create(
        call=rich,
        number=1,
        direction="operator_first",
        started_at=base + dt.timedelta(hours=1),
        operator_status=200,
        client_status=486,
        display_status="unsuccessful",
        reason="busy",
    )
    await Attempt.create(
        call=rich,
        number=2,
        direction="operator_first",
        duration_seconds=150,
        started_at=base + dt.timedelta(hours=1, minutes=2),
        operator_status=200,
        client_status=200,
        display_status="successful",
    )
    await CallTag.create(call=rich, name="VIP")
    await CallTag.create(call=rich, name="=evil()")

    class Params(dict):
        def getlist(self, key):
            return [str(first.id), str(second.id)] if key == "connection" else []

    path = tmp_path / "calls.xlsx"
    import perezvon.web.admin.export as export

    export.BATCH, saved = 3, export.BATCH  # several batches and refills per connection
    try:
        written = await Exporter("en").write(parse_filters(Params()), None, path)
    finally:
        export.BATCH = saved
    assert written == 8
    rows = list(openpyxl.load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    assert list(rows[0]) == COLUMNS and len(rows) == 9
    lines = [dict(zip(COLUMNS, row)) for row in rows[1:]]
    assert [line["Call id"] for line in lines] == [str(c.id) for c in [rich, *reversed(made)]]  # newest first
    top = lines[0]
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert top["Date"] == dt.datetime(2026, 3, 10) and top["Time"] == "13:00:00"
    assert top["Site"] == first.domain and top["Connection"] == "Первый & <второй>"
    assert top["Office"] == "'-Офис" and top["Department"] == "Продажи"
    assert top["Client name"] == "'@SUM(A1)" and top["UTM content"] == "'+7 (916) x"
    assert top["UTM term"] == "+79161112233"  # a plain phone number is no formula
    assert top["User tags"] == "'=evil(), VIP"
    assert top["Pages viewed"] == 2 and top["Seconds on site"] == 40 and top["Trigger"] == "On exit intent"
    assert top["Rule"] == "'=1+1" and top["Other visit data"] == '{"scroll": 90}'
    assert top["Preferred time"] == dt.datetime(2026, 3, 11, 10, 30)  # local wall-clock time, a real date
    assert top["Finished"] == dt.datetime(2026, 3, 10, 13, 3) and top["Recording"] == "Yes"
    assert top["Client IP"] == "10.0.0.1" and top["Visitor id"] == "v-1"
    assert top["Number shown on the site"] == "+74950000000"
    assert top["Source-specific data"] == '{"поле": "значение"}'
    assert top["Lead id"] == str(rich.lead_id) and top["Duration, s"] == 150 and top["Attempts"] == 0
    chain = top["Attempt chain"].split("\n")
    assert chain[0].startswith("1. 10.03 13:00:00 200-486 ") and chain[0].endswith(", 0 sec: busy")
    assert chain[1].startswith("2. 10.03 13:02:00 200-200 ") and chain[1].endswith(", 150 sec")  # units in words
    assert lines[-1]["Client name"] == "Имя0 <b>&amp;</b>"  # control character gone, markup kept as text
    assert lines[-1]["Site"] == second.domain and lines[-1]["Office"] is None
    assert all(
        line["Time"] == (base + dt.timedelta(minutes=n)).astimezone(moscow).strftime("%H:%M:%S")
        for n, line in zip(range(6, -1, -1), lines[1:])
    )
