"""The trade-in form's photos over HTTP on a real server (docs/tradein.md#photos): what is taken, what is
refused before anything is stored, and who may see them; the car on the admin's call page and in
what the operator hears."""

from __future__ import annotations

import io

import httpx
import pytest
from live_helpers import live_server
from test_admin_helpers import PASSWORD, csrf_of, make_user

from perezvon.core import enablement
from perezvon.core.models import Call, GrantLevel, Lead
from perezvon.plugins.tradein.photos import MAX_BYTES, folder
from perezvon.web.app import create_app

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"j" * 500
PNG = b"\x89PNG\r\n\x1a\n" + b"p" * 500
WEBP = b"RIFF\x00\x10\x00\x00WEBPVP8 " + b"w" * 500
GIF = b"GIF89a" + b"g" * 500
CAR = {"make": "Kia", "model": "Rio", "year": 2017, "mileage": 85000}


@pytest.fixture
async def live(perezvon_app):
    async with (
        live_server(create_app(perezvon_app, manage_lifecycle=False)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        yield client


@pytest.fixture
async def site(perezvon_site):
    await enablement.enable(perezvon_site, enablement.APPLICATION, "tradein", {})
    return perezvon_site


def stored(perezvon_app, site) -> list[str]:
    path = folder(perezvon_app.settings.data_dir, site.id)
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def photos(*files: tuple[str, bytes, str]) -> list[tuple[str, tuple[str, io.BytesIO, str]]]:
    return [("photo", (name, io.BytesIO(data), kind)) for name, data, kind in files]


async def upload(live, token: str, *files: tuple[str, bytes, str]) -> httpx.Response:
    return await live.post("/p/tradein/photos", data={"token": token}, files=photos(*files))


async def test_photos_are_taken_by_their_bytes_and_shown_to_admins_who_may_view_the_site(
    perezvon_app, live, site, new_phone
):
    # a WebP named .txt and sent as text is a WebP; the name and the declared type are not trusted
    answer = await upload(live, site.token, ("a.jpg", JPEG, "image/jpeg"), ("b.txt", WEBP, "text/plain"))
    assert answer.status_code == 201, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"  # the site's page reads the answer
    ids = answer.json()["photos"]
    assert [i.rsplit(".", 1)[1] for i in ids] == ["jpg", "webp"]
    assert stored(perezvon_app, site) == sorted(ids)
    base = folder(perezvon_app.settings.data_dir, site.id)
    assert (base / ids[0]).read_bytes() == JPEG and (base / ids[1]).read_bytes() == WEBP

    lead = await live.post(
        "/api/v1/leads",
        json={
            "token": site.token,
            "source": "tradein",
            "phone": new_phone(),
            "consent": True,
            "extra": {**CAR, "photos": ids},
        },
    )
    assert lead.status_code in (200, 201), lead.text
    stored_lead = await Lead.get(id=lead.json()["lead_id"])
    assert stored_lead.source == "tradein" and stored_lead.extra["photos"] == ids

    url = f"/p/tradein/photos/{site.id}/{ids[0]}"
    assert (await live.get(url)).status_code == 404  # nobody signed in
    outsider = await make_user(level=GrantLevel.FULL, connection=await _other_site(site))
    await _sign_in(live, outsider)
    assert (await live.get(url)).status_code == 404  # signed in, but not this site's
    live.cookies.clear()
    viewer = await make_user(level=GrantLevel.VIEW, connection=site)
    await _sign_in(live, viewer)
    shown = await live.get(url)
    assert shown.status_code == 200 and shown.content == JPEG
    assert shown.headers["content-type"] == "image/jpeg" and shown.headers["x-content-type-options"] == "nosniff"
    assert (await live.get(f"/p/tradein/photos/{site.id}/../../perezvon.sqlite3")).status_code == 404

    # the admin's call page: the car and the photos, from the app's own rows
    call = await Call.get(lead_id=stored_lead.id)
    page = await live.get(f"/calls/{call.id}")
    assert page.status_code == 200
    assert "Форма трейд-ин" in page.text and "Kia" in page.text and "85 000" in page.text
    for photo in ids:
        assert f'src="/p/tradein/photos/{site.id}/{photo}"' in page.text


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ([("car.jpg", GIF, "image/jpeg")], 415, "Only JPEG, PNG or WebP photos."),
        (
            [("car.jpg", JPEG, "image/jpeg"), ("note.jpg", b"hello", "image/jpeg")],
            415,
            "Only JPEG, PNG or WebP photos.",
        ),
        ([(f"{n}.png", PNG, "image/png") for n in range(6)], 422, "At most 5 photos."),
        ([("big.jpg", JPEG + b"x" * (MAX_BYTES - len(JPEG) + 1), "image/jpeg")], 413, "A photo may be at most 5 MB."),
        (
            [(f"{n}.jpg", JPEG + b"x" * (MAX_BYTES - len(JPEG)), "image/jpeg") for n in range(6)],
            413,
            "At most 5 photos of 5 MB each.",
        ),
    ],
    ids=["gif", "one-of-two-not-a-picture", "six", "over-5-mb", "body-over-the-sum"],
)
async def test_wrong_photos_are_refused_whole_before_anything_is_stored(
    perezvon_app, live, site, files, status, message
):
    answer = await upload(live, site.token, *files)
    assert answer.status_code == status, answer.text
    assert answer.json() == {"errors": {"photo": [message]}}
    assert stored(perezvon_app, site) == []


async def test_no_photo_a_wrong_token_an_app_switched_off_or_not_multipart_are_refused(perezvon_app, live, site):
    no_photo = await live.post("/p/tradein/photos", files={"token": (None, site.token)})
    assert no_photo.status_code == 422 and no_photo.json()["errors"]["photo"] == ["No photo."]
    refused = await upload(live, "no-such-token", ("a.jpg", JPEG, "image/jpeg"))
    assert refused.status_code == 422 and refused.json()["errors"]["photo"] == ["Unknown site token."]
    not_json = await live.post("/p/tradein/photos", json={"token": site.token})
    assert not_json.status_code == 415
    await enablement.switch(site, enablement.APPLICATION, "tradein", False)
    switched_off = await upload(live, site.token, ("a.jpg", JPEG, "image/jpeg"))
    assert switched_off.status_code == 422 and switched_off.json()["errors"]["photo"] == ["Unknown site token."]
    assert stored(perezvon_app, site) == []


async def _other_site(site):
    from perezvon.core.models import Connection

    return await Connection.create(project_id=site.project_id, domain=f"other-{site.domain}", name="Other")


async def _sign_in(live, user) -> None:
    page = await live.get("/login")
    answer = await live.post(
        "/login", data={"phone": user.phone, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303, answer.text


async def test_the_demo_switches_the_trade_in_form_on_with_its_bundled_makes(perezvon_app, perezvon_client):
    from perezvon.core.demo import seed_demo

    demo = await seed_demo(perezvon_app)
    config = (await perezvon_client.get(f"/site/config?token={demo['site_token']}")).json()
    tradein = {app["key"]: app for app in config["apps"]}["tradein"]["config"]
    makes = {m["make"]: m["models"] for m in tradein["makes"]}
    assert len(makes) == 20 and "Vesta" in makes["Lada"] and "Camry" in makes["Toyota"]
    assert tradein["max_photos"] == 5 and tradein["photos"] is True
    assert "tradein_opened" in config["events"] and "tradein_lead" in config["events"]


def test_the_car_is_spoken_from_what_the_browser_sent_read_defensively():
    from perezvon.core.announcements import LeadFacts, for_operator
    from perezvon.core.schemas import AnnouncementSettingsSchema
    from perezvon.plugins.tradein.app import Tradein

    app, spoken = Tradein(), AnnouncementSettingsSchema().load({})
    good = Lead(extra={**CAR, "photos": ["x" * 32 + ".jpg"]})
    assert app.spoken_details(good) == "Трейд-ин: Kia Rio 2017 года, пробег 85000 километров"
    text = for_operator(LeadFacts(site="Автосалон", client_name="Иван", details=app.spoken_details(good)), spoken)
    assert text == (
        "Обратный звонок с сайта Автосалон. Клиент: Иван. Трейд-ин: Kia Rio 2017 года, пробег 85000 километров."
    )
    # a year or mileage that is not a number is left out; markup is not spoken; no car, nothing said
    odd = Lead(extra={"make": "<b>Kia</b>", "model": "Rio", "year": "2017", "mileage": True})
    said = for_operator(LeadFacts(site="", details=app.spoken_details(odd)), spoken)
    assert said == "Обратный звонок. Трейд-ин: b Kia b Rio."
    assert app.spoken_details(Lead(extra={"photos": "nope"})) == ""
    assert app.lead_rows(Lead(extra={"photos": ["../../etc/passwd"]}, connection_id=1), "en")[-1].label == "Mileage, km"


async def test_a_car_nobody_could_value_is_refused_with_a_clear_422_and_nothing_stored(live, site, new_phone):
    async def send(extra: dict, language: str = "ru") -> httpx.Response:
        payload = {"token": site.token, "source": "tradein", "phone": phone, "consent": True, "extra": extra}
        return await live.post("/api/v1/leads", json=payload, headers={"Accept-Language": language})

    phone = new_phone()
    bad = {"model": "", "year": "2017", "mileage": -5, "photos": ["../../etc/passwd"]}
    answer = await send(bad)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]["extra"]
    assert errors == {
        "make": ["Обязательное поле."],
        "model": ["Длина должна быть от 1 до 100."],
        "year": ["Должно быть целое число."],
        "mileage": ["Должно быть не меньше 0 и не больше 5000000."],
        "photos": {"0": ["Значение не подходит по формату."]},
    }
    english = (await send(bad, "en")).json()["errors"]["extra"]
    assert english["year"] == ["Not a valid integer."] and english["make"] == ["Missing data for required field."]
    assert await Lead.filter(phone=phone).count() == 0

    # a year from the future is as wrong as one before cars were sold here
    answer = await send({**CAR, "year": 2999}, "en")
    assert answer.status_code == 422 and "year" in answer.json()["errors"]["extra"]

    # what an integration adds next to the car passes as sent
    answer = await send({**CAR, "tracker": {"session": "abc"}})
    assert answer.status_code in (200, 201), answer.text
    lead = await Lead.get(id=answer.json()["lead_id"])
    assert lead.extra == {**CAR, "photos": [], "tracker": {"session": "abc"}}


async def test_photos_no_lead_took_go_a_day_later_and_the_leads_photos_stay(perezvon_app, live, site, new_phone):
    import datetime as dt
    import os

    from perezvon.plugins.tradein.sweep import sweep_orphan_photos

    answer = await upload(
        live, site.token, ("a.jpg", JPEG, "image/jpeg"), ("b.png", PNG, "image/png"), ("c.webp", WEBP, "image/webp")
    )
    taken, orphan, fresh = answer.json()["photos"]
    lead = await live.post(
        "/api/v1/leads",
        json={
            "token": site.token,
            "source": "tradein",
            "phone": new_phone(),
            "consent": True,
            "extra": {**CAR, "photos": [taken]},
        },
    )
    assert lead.status_code in (200, 201), lead.text
    base = folder(perezvon_app.settings.data_dir, site.id)
    # two of them were uploaded two days ago, the lead sent a minute later; the third just now
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    for name in (taken, orphan):
        os.utime(base / name, (two_days_ago.timestamp(), two_days_ago.timestamp()))
    await Lead.filter(id=lead.json()["lead_id"]).update(created_at=two_days_ago + dt.timedelta(minutes=1))

    assert await sweep_orphan_photos(perezvon_app.settings.data_dir) == 1
    assert stored(perezvon_app, site) == sorted([taken, fresh])
    # the worker runs it every hour, once across the workers
    periodic: dict[str, int] = {}
    assert "tradein.sweep_photos" in perezvon_app.host.job_functions(periodic)
    assert periodic["tradein.sweep_photos"] == 60
