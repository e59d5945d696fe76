"""Operator numbers, offices and departments are edited in place on the Numbers tab, over real HTTP:
checked like a new one, errors on the row, edit level, and only this connection's own (docs/admin.md)."""

from __future__ import annotations

import uuid

import pytest
from test_admin_helpers import login, make_user

from perezvon.core.models import Connection, Department, Office, OperatorNumber, Project

EN = {"Accept-Language": "en"}


async def _site(client, level="edit"):
    project = await Project.create(name="Numbers project")
    connection = await Connection.create(project=project, domain=f"num-{uuid.uuid4().hex[:8]}.example")
    other = await Connection.create(project=project, domain=f"other-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(client, await make_user(level=level, connection=connection))
    return connection, other, csrf


async def test_an_operator_number_is_edited_in_place(perezvon_client):
    connection, _, csrf = await _site(perezvon_client)
    office = await Office.create(connection=connection, name="Центр")
    number = await OperatorNumber.create(connection=connection, phone="+74951112233")
    url = f"/connections/{connection.id}/settings/numbers"
    page = await perezvon_client.get(url)
    assert f'id="edit-number-{number.id}"' in page.text and 'value="edit_number"' in page.text
    ok = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "edit_number",
            "id": str(number.id),
            "phone": "8 (495) 765-43-21",
            "extension": "12#",
            "office_id": str(office.id),
        },
    )
    assert ok.status_code == 303
    saved = await OperatorNumber.get(id=number.id)
    assert (saved.phone, saved.extension, saved.office_id) == ("+74957654321", "12#", office.id)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("phone", "12", None), ("extension", "12a", "Digits, * and # only."), ("office_id", "999999", "Not an office")],
)
async def test_a_bad_number_edit_shows_the_error_on_its_row(perezvon_client, field, value, message):
    connection, other, csrf = await _site(perezvon_client)
    number = await OperatorNumber.create(connection=connection, phone="+74951112233")
    if field == "office_id":  # another connection's office is not this connection's
        value = str((await Office.create(connection=other, name="Чужой")).id)
    data = {"csrf_token": csrf, "action": "edit_number", "id": str(number.id), "phone": "+74951112233"}
    answer = await perezvon_client.post(
        f"/connections/{connection.id}/settings/numbers", data={**data, field: value}, headers=EN
    )
    assert answer.status_code == 400
    row = answer.text.split(f'id="edit-number-{number.id}"', 1)[1].split("</details>", 1)[0]
    assert row.startswith(" open") and 'class="error"' in row
    if message:
        assert message in row
    assert (await OperatorNumber.get(id=number.id)).phone == "+74951112233"  # nothing saved


async def test_an_office_and_a_department_are_edited_in_place(perezvon_client):
    connection, _, csrf = await _site(perezvon_client)
    office = await Office.create(connection=connection, name="Центр", address="Тверская, 1")
    department = await Department.create(connection=connection, name="Продажи")
    url = f"/connections/{connection.id}/settings/numbers"
    page = await perezvon_client.get(url)
    assert 'value="Тверская, 1"' in page.text and 'name="department_name" value="Продажи"' in page.text
    answer = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "edit_office",
            "id": str(office.id),
            "office_name": "Север",
            "office_address": "Ленинградский пр., 5",
            "office_latitude": "55.8",
            "office_longitude": "",
        },
    )
    assert answer.status_code == 303
    saved = await Office.get(id=office.id)
    assert (saved.name, saved.address, saved.latitude, saved.longitude) == ("Север", "Ленинградский пр., 5", 55.8, None)
    answer = await perezvon_client.post(
        url,
        data={"csrf_token": csrf, "action": "edit_department", "id": str(department.id), "department_name": "Сервис"},
    )
    assert answer.status_code == 303 and (await Department.get(id=department.id)).name == "Сервис"

    bad = await perezvon_client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "edit_office",
            "id": str(office.id),
            "office_name": "",
            "office_latitude": "91",
        },
        headers=EN,
    )
    assert bad.status_code == 400
    row = bad.text.split(f'id="edit-office-{office.id}"', 1)[1].split("</details>", 1)[0]
    assert row.startswith(" open") and row.count('class="error"') == 2  # the name and the latitude
    assert (await Office.get(id=office.id)).name == "Север"
    bad = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "edit_department", "id": str(department.id), "department_name": ""}
    )
    assert bad.status_code == 400 and (await Department.get(id=department.id)).name == "Сервис"


@pytest.mark.parametrize("what", ["number", "office", "department"])
async def test_another_connections_row_is_not_found(perezvon_client, what):
    connection, other, csrf = await _site(perezvon_client)
    theirs = {
        "number": lambda: OperatorNumber.create(connection=other, phone="+74951112233"),
        "office": lambda: Office.create(connection=other, name="Чужой"),
        "department": lambda: Department.create(connection=other, name="Чужой"),
    }[what]
    item = await theirs()
    fields = {"phone": "+74957654321", "office_name": "Мой", "department_name": "Мой"}
    answer = await perezvon_client.post(
        f"/connections/{connection.id}/settings/numbers",
        data={"csrf_token": csrf, "action": f"edit_{what}", "id": str(item.id), **fields},
    )
    assert answer.status_code == 404
    after = await type(item).get(id=item.id)
    assert getattr(after, "phone", None) != "+74957654321" and getattr(after, "name", None) != "Мой"
    missing = await perezvon_client.post(
        f"/connections/{connection.id}/settings/numbers",
        data={"csrf_token": csrf, "action": f"edit_{what}", "id": "not-a-number", **fields},
    )
    assert missing.status_code == 404


async def test_a_viewer_cannot_edit(perezvon_client):
    connection, _, csrf = await _site(perezvon_client, level="view")
    number = await OperatorNumber.create(connection=connection, phone="+74951112233")
    url = f"/connections/{connection.id}/settings/numbers"
    assert 'value="edit_number"' not in (await perezvon_client.get(url)).text
    answer = await perezvon_client.post(
        url, data={"csrf_token": csrf, "action": "edit_number", "id": str(number.id), "phone": "+74957654321"}
    )
    assert answer.status_code == 403
    assert (await OperatorNumber.get(id=number.id)).phone == "+74951112233"
