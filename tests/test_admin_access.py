"""Every admin route, for every access level: allowed exactly where docs/admin.md#who-may-do-what says.

The expectations below are written independently of web/admin/routes.py; a
route missing from them fails the test, so no page can be added without
deciding who may use it.
"""

from __future__ import annotations

import httpx
import pytest
from marshmallow import Schema, fields
from test_admin_helpers import PASSWORD, csrf_of, make_call, make_user

from perezvon.core.models import CallNote, Project
from perezvon.core.recordings import signed_link
from perezvon.core.registry import Integration
from perezvon.web.admin.routes import ADMIN_ROUTES
from perezvon.web.app import create_app

LEVELS = ("anonymous", "no_grant", "view_connection", "edit_project", "full_project", "full_connection", "staff")
EVERYONE = set(LEVELS)
SIGNED_IN = EVERYONE - {"anonymous"}
VIEWERS = {"view_connection", "edit_project", "full_project", "full_connection", "staff"}
EDITORS = {"edit_project", "full_project", "full_connection", "staff"}
FULL = {"full_project", "full_connection", "staff"}
PROJECT_FULL = {"full_project", "staff"}  # a connection grant alone never manages the project
STAFF = {"staff"}

EXPECTED = {
    ("login", "GET"): EVERYONE,
    ("login", "POST"): EVERYONE,
    ("forgot", "GET"): EVERYONE,
    ("forgot", "POST"): EVERYONE,
    ("activate", "GET"): EVERYONE,
    ("activate", "POST"): EVERYONE,
    ("language", "GET"): EVERYONE,
    ("logout", "POST"): EVERYONE,
    ("home", "GET"): SIGNED_IN,
    ("profile", "GET"): SIGNED_IN,
    ("profile", "POST"): SIGNED_IN,
    ("calls_table", "GET"): SIGNED_IN,
    ("export_start", "POST"): SIGNED_IN,
    ("save_calls_columns", "POST"): SIGNED_IN,
    ("export_page", "GET"): SIGNED_IN,
    ("export_status", "GET"): SIGNED_IN,
    ("export_download", "GET"): SIGNED_IN,
    ("dashboard", "GET"): SIGNED_IN,
    ("projects_list", "GET"): SIGNED_IN,
    ("connections_list", "GET"): SIGNED_IN,
    ("call_detail", "GET"): VIEWERS,
    ("call_recording", "GET"): VIEWERS,
    # the signature is the access: everyone may try, a bad or old one is refused (tests/test_recording_storage.py)
    ("signed_recording", "GET"): EVERYONE,
    ("call_tags", "POST"): EDITORS,
    ("call_notes", "POST"): EDITORS,
    ("call_again_now", "POST"): EDITORS,
    # a note written by someone else: only full access changes it (its author, with edit, may too)
    ("call_note", "POST"): FULL,
    ("project_page", "GET"): VIEWERS,
    ("project_save", "POST"): PROJECT_FULL,
    ("project_grants", "POST"): PROJECT_FULL,
    ("connection_page", "GET"): VIEWERS,
    ("connection_users", "GET"): FULL,
    ("connection_users_save", "POST"): FULL,
    ("settings_tab", "GET"): VIEWERS,
    ("settings_tab_save", "POST"): EDITORS,
    ("redial_preview", "POST"): VIEWERS,
    ("plugin_toggle", "POST"): FULL,
    ("plugin_settings", "GET"): VIEWERS,
    ("plugin_settings_save", "POST"): EDITORS,
    ("app_editor_preview", "GET"): VIEWERS,
    ("app_editor_draft", "POST"): VIEWERS,
    ("download_snippet", "GET"): VIEWERS,
    ("staff_users", "GET"): STAFF,
    ("staff_users", "POST"): STAFF,
    ("staff_projects", "GET"): STAFF,
    ("staff_projects", "POST"): STAFF,
    ("staff_connections", "GET"): STAFF,
    ("staff_connections", "POST"): STAFF,
    ("staff_grants", "GET"): STAFF,
    ("staff_grants", "POST"): STAFF,
}


class ProbeSettings(Schema):
    counter = fields.String(load_default="1", metadata={"label": "Counter"})


class ProbeIntegration(Integration):
    key = "admin_probe"
    title = "Probe"
    settings_schema = ProbeSettings


def test_every_route_has_an_expectation():
    routes = {(r.name, m) for r in ADMIN_ROUTES for m in r.methods}
    assert routes == set(EXPECTED)


async def _users(connection) -> dict:
    project = await Project.get(id=connection.project_id)
    return {
        "no_grant": await make_user(),
        "view_connection": await make_user(level="view", connection=connection),
        "edit_project": await make_user(level="edit", project=project),
        "full_project": await make_user(level="full", project=project),
        "full_connection": await make_user(level="full", connection=connection),
        "staff": await make_user(staff=True),
    }


def _denied(route, response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    if (
        response.status_code in (302, 303)
        and response.headers["location"].startswith("/login")
        and route.name != "logout"
    ):  # signing out ends on the login page
        return True
    # objects the user may not even see are answered as if they did not exist
    return response.status_code == 404 and route.scope in ("project", "connection", "call")


@pytest.mark.parametrize("level", LEVELS)
async def test_the_route_table_for_each_level(perezvon_app, perezvon_site, level, tmp_path):
    registry = perezvon_app.host.registry
    registry.current_plugin = "admin-test"
    registry.add_integration(ProbeIntegration())
    try:
        call = await make_call(perezvon_site)
        recording = tmp_path / "call.wav"
        recording.write_bytes(b"RIFF....WAVE")
        call.recording = str(recording)
        await call.save(update_fields=["recording"])
        users = await _users(perezvon_site)
        note = await CallNote.create(
            call=call, author=await make_user(level="edit", connection=perezvon_site), text="n"
        )
        values = {
            "note_id": note.id,
            "project_id": perezvon_site.project_id,
            "connection_id": perezvon_site.id,
            "call_id": call.id,
            "kind": "integrations",
            "key": "admin_probe",
            "tab": "general",
            "export_id": "abc123",
            "token": "not-a-token",
            "code": "en",
            # a valid signed link to the call's recording (its refusals: tests/test_recording_storage.py)
            **dict(
                zip(
                    ("call_ref", "expires", "signature"),
                    signed_link(perezvon_app.settings, str(call.id)).rsplit("/", 3)[1:],
                )
            ),
        }
        transport = httpx.ASGITransport(app=create_app(perezvon_app, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # even a visitor who is not signed in gets a session (and a CSRF token) from the login page
            csrf = csrf_of((await client.get("/login")).text)
            if level != "anonymous":
                page = await client.get("/login")
                answer = await client.post(
                    "/login", data={"phone": users[level].phone, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
                )
                assert answer.status_code == 303
                csrf = csrf_of((await client.get("/profile")).text)
            # sign-out last: it ends the session the other requests need
            for route in sorted(ADMIN_ROUTES, key=lambda r: r.name == "logout"):
                path = route.path.format(**values)
                for method in route.methods:
                    if method == "GET":
                        response = await client.get(path)
                    else:
                        response = await client.post(
                            path, data={"csrf_token": csrf, "action": "probe", "name": "probe", "on": "1"}
                        )
                    allowed = level in EXPECTED[(route.name, method)]
                    assert _denied(route, response) != allowed, (
                        f"{level}: {method} {path} answered {response.status_code}, expected "
                        f"{'allowed' if allowed else 'denied'}"
                    )
                    if level == "no_grant" and route.scope in ("project", "connection", "call"):
                        assert response.status_code == 404  # not even its existence is shown
    finally:
        registry.integrations.pop("admin_probe", None)
        registry.owner.pop(("integration", "admin_probe"), None)


async def test_grants_never_reach_another_project(perezvon_app, perezvon_client, perezvon_site):
    from perezvon.core.models import Connection

    other_project = await Project.create(name="Other")
    other = await Connection.create(project=other_project, domain=f"other-{perezvon_site.domain}")
    theirs = await make_call(other, phone="+79160001122")
    mine = await make_call(perezvon_site, phone="+79160003344")
    user = await make_user(level="full", project=await Project.get(id=perezvon_site.project_id))
    from test_admin_helpers import login

    await login(perezvon_client, user)
    table = (await perezvon_client.get("/calls")).text
    assert "+79160003344" in table and "+79160001122" not in table
    assert (await perezvon_client.get(f"/calls/{theirs.id}")).status_code == 404
    assert (await perezvon_client.get(f"/connections/{other.id}")).status_code == 404
    assert (await perezvon_client.get(f"/projects/{other_project.id}")).status_code == 404
    assert (await perezvon_client.get(f"/calls/{mine.id}")).status_code == 200


async def test_full_on_a_project_manages_its_grants(perezvon_client, perezvon_site):
    from test_admin_helpers import csrf_of, login

    from perezvon.core.models import AccessGrant, Connection

    project = await Project.get(id=perezvon_site.project_id)
    manager = await make_user(level="full", project=project)
    colleague = await make_user()
    other = await Connection.create(
        project=await Project.create(name="Elsewhere"), domain=f"elsewhere-{perezvon_site.domain}"
    )
    csrf = await login(perezvon_client, manager)
    await perezvon_client.post(
        f"/projects/{project.id}/grants",
        data={
            "csrf_token": csrf,
            "action": "save",
            "phone": colleague.phone,
            "target": str(perezvon_site.id),
            "level": "edit",
        },
    )
    grant = await AccessGrant.get(user_id=colleague.id)
    assert (grant.connection_id, grant.level) == (perezvon_site.id, "edit")
    # a connection of another project cannot be granted from here
    await perezvon_client.post(
        f"/projects/{project.id}/grants",
        data={"csrf_token": csrf, "action": "save", "phone": colleague.phone, "target": str(other.id), "level": "full"},
    )
    assert await AccessGrant.filter(user_id=colleague.id).count() == 1
    page = await perezvon_client.get(f"/projects/{project.id}")
    assert colleague.phone in page.text
    await perezvon_client.post(
        f"/projects/{project.id}/grants",
        data={"csrf_token": csrf_of(page.text), "action": "delete", "id": str(grant.id)},
    )
    assert not await AccessGrant.exists(user_id=colleague.id)


@pytest.mark.parametrize("level", sorted(VIEWERS))
async def test_every_level_without_the_contacts_right_reads_them_masked(perezvon_client, perezvon_site, level):
    """Masking is per grant, whatever its level; staff always see (docs/admin.md#who-may-do-what)."""
    from test_admin_helpers import login

    from perezvon.core.models import AccessGrant

    call = await make_call(perezvon_site, phone="+79167654321")
    user = (await _users(perezvon_site))[level]
    await AccessGrant.filter(user_id=user.id).update(may_see_contacts=False)
    await login(perezvon_client, user)
    for path in ("/calls", f"/calls/{call.id}"):
        page = (await perezvon_client.get(path)).text
        if level == "staff":
            assert "+79167654321" in page
        else:
            assert "79167654321" not in page and "+7 916 ***-**-21" in page
