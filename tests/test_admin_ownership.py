"""What belongs to one connection only (issue 18), over real HTTP in both languages: a domain (primary
or extra) is served by one connection, and the site code is e-mailed only to that connection's users."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from live_helpers import live_server
from test_admin_helpers import csrf_of, make_user, signed_in_over_http
from tortoise.exceptions import IntegrityError

from perezvon.core.models import Connection, ConnectionDomain, Project
from perezvon.web.admin.views import settings as settings_views
from perezvon.web.app import create_app


@pytest.fixture
async def live_admin(perezvon_app) -> AsyncIterator[str]:
    """The admin on a real port (PEREZVON_TEST_PORTS), in the test's event loop."""
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        yield base


def _errors(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<span class="error">(.*?)</span>', page, re.S)]


TAKEN = {
    "ru": ("Уже у другого подключения: {}.", "Этот домен уже у другого подключения."),
    "en": ("Another connection already has {}.", "Another connection already has this domain."),
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_domain_belongs_to_one_connection(perezvon_app, live_admin, lang):
    tag = uuid.uuid4().hex[:8]
    project = await Project.create(name="Domains")
    first = await Connection.create(
        project=project, domain=f"a-{tag}.example", extra_domains=[f"shop.a-{tag}.example", f"пример-{tag}.рф"]
    )
    second = await Connection.create(project=project, domain=f"b-{tag}.example")
    staff = await make_user(staff=True)
    url = f"/connections/{second.id}/settings/general"
    refused_extra_msg, refused_domain_msg = TAKEN[lang]
    async with signed_in_over_http(live_admin, staff, lang) as client:
        csrf = csrf_of((await client.get(url)).text)

        async def save(domain: str, extra: str):
            return await client.post(
                url, data={"csrf_token": csrf, "domain": domain, "extra_domains": extra, "timer_seconds": "36"}
            )

        # another's extra domain, another's primary, the same Cyrillic domain spelt as a browser sends it
        for extra, named in (
            (f"m.b-{tag}.example\nSHOP.a-{tag}.example", f"shop.a-{tag}.example"),
            (f"a-{tag}.example", f"a-{tag}.example"),
            (f"пример-{tag}.рф".encode("idna").decode(), f"пример-{tag}.рф".encode("idna").decode()),
        ):
            refused = await save(second.domain, extra)
            assert refused.status_code == 400, extra
            assert refused_extra_msg.format(named) in _errors(refused.text), extra
        # another's extra domain as this one's primary
        refused = await save(f"shop.a-{tag}.example", "")
        assert refused.status_code == 400 and refused_domain_msg in _errors(refused.text)
        assert (await Connection.get(id=second.id)).extra_domains == []  # nothing of it was saved
        # a new connection on another's extra domain is refused too
        staff_page = await client.get("/staff/connections")
        created = await client.post(
            "/staff/connections",
            data={
                "csrf_token": csrf_of(staff_page.text),
                "project_id": str(project.id),
                "domain": f"shop.a-{tag}.example",
            },
        )
        assert created.status_code == 400 and refused_domain_msg in _errors(created.text)
        # a domain nobody has is saved
        assert (await save(second.domain, f"m.b-{tag}.example")).status_code == 303
    assert (await Connection.get(id=second.id)).extra_domains == [f"m.b-{tag}.example"]
    assert (await Connection.get(id=first.id)).extra_domains == [f"shop.a-{tag}.example", f"пример-{tag}.рф"]


async def test_the_database_keeps_a_domain_with_one_connection(perezvon_app):
    """Past any check: a save of a domain another connection holds, in any spelling a browser
    sends, fails on the unique index of connection_domains and stores nothing of itself."""
    tag = uuid.uuid4().hex[:8]
    project = await Project.create(name="Domain rows")
    first = await Connection.create(project=project, domain=f"r1-{tag}.example", extra_domains=[f"дом-{tag}.рф"])
    second = await Connection.create(project=project, domain=f"r2-{tag}.example")
    rows = set(await ConnectionDomain.filter(connection_id=first.id).values_list("domain", flat=True))
    assert rows == {f"r1-{tag}.example", f"дом-{tag}.рф", f"дом-{tag}.рф".encode("idna").decode()}
    for taken in (f"r1-{tag}.example", f"дом-{tag}.рф".encode("idna").decode()):
        second.extra_domains = [f"m.r2-{tag}.example", taken]
        with pytest.raises(IntegrityError):
            await second.save()
        assert (await Connection.get(id=second.id)).extra_domains == []
        assert await ConnectionDomain.filter(connection_id=second.id).values_list("domain", flat=True) == [
            f"r2-{tag}.example"
        ]
    # a new connection on another's extra domain is not stored at all
    with pytest.raises(IntegrityError):
        await Connection.create(project=project, domain=f"дом-{tag}.рф")
    assert not await Connection.filter(domain=f"дом-{tag}.рф").exists()
    # a domain given up is free for another connection; a deleted connection frees its domains
    first.extra_domains = []
    await first.save()
    second.extra_domains = [f"дом-{tag}.рф"]
    await second.save()
    await second.delete()
    assert not await ConnectionDomain.filter(domain=f"дом-{tag}.рф").exists()


async def test_concurrent_saves_leave_a_domain_with_exactly_one_connection(perezvon_app):
    """Two connections saving the same new domain at once, many times over: exactly one save
    wins each time (on PostgreSQL either may; SQLite takes them one after the other)."""
    project = await Project.create(name="Concurrent")
    for _ in range(10):
        tag = uuid.uuid4().hex[:8]
        pair = [await Connection.create(project=project, domain=f"c{n}-{tag}.example") for n in (1, 2)]
        for connection in pair:
            connection.extra_domains = [f"both-{tag}.example"]
        results = await asyncio.gather(*(c.save() for c in pair), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["IntegrityError", "NoneType"], results
        owner = pair[results.index(None)]
        assert await ConnectionDomain.filter(domain=f"both-{tag}.example").values_list("connection_id", flat=True) == [
            owner.id
        ]
        stored = {c.id: c.extra_domains for c in await Connection.filter(id__in=[c.id for c in pair])}
        assert stored == {c.id: ([f"both-{tag}.example"] if c is owner else []) for c in pair}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_two_saves_of_one_domain_at_the_same_instant(perezvon_app, live_admin, lang, monkeypatch):
    """The admin's check reads; another connection's save lands between this save's check and its
    write (made to happen every time: right after the real check, the other connection takes the
    domain through the real model). The loser gets the form back with the error, never a 500, and
    the domain stays with the winner."""
    tag = uuid.uuid4().hex[:8]
    project = await Project.create(name="Race")
    winner = await Connection.create(project=project, domain=f"w-{tag}.example")
    loser = await Connection.create(project=project, domain=f"l-{tag}.example")
    contested = f"shop-{tag}.example"
    real_check = settings_views.domains_of_others
    raced = []

    async def check_then_lose_the_race(domains, connection_id=None):
        found = await real_check(domains, connection_id)
        if not raced:
            raced.append(found)
            winner.extra_domains = [contested]
            await winner.save()
        return found

    monkeypatch.setattr(settings_views, "domains_of_others", check_then_lose_the_race)
    staff = await make_user(staff=True)
    url = f"/connections/{loser.id}/settings/general"
    async with signed_in_over_http(live_admin, staff, lang) as client:
        csrf = csrf_of((await client.get(url)).text)
        refused = await client.post(
            url, data={"csrf_token": csrf, "domain": loser.domain, "extra_domains": contested, "timer_seconds": "36"}
        )
    assert raced == [[]]  # the check saw the domain free
    assert refused.status_code == 400
    assert TAKEN[lang][0].format(contested) in _errors(refused.text)
    assert (await Connection.get(id=loser.id)).extra_domains == []
    assert await ConnectionDomain.filter(domain=contested).values_list("connection_id", flat=True) == [winner.id]


async def test_a_site_token_names_one_connection(perezvon_app):
    """The site script, the intake and the site forms find a connection by its token (or its id),
    never by a domain; the database keeps tokens unique, so no lookup can have two answers."""
    project = await Project.create(name="Tokens")
    taken = await Connection.create(project=project, domain=f"t-{uuid.uuid4().hex[:8]}.example")
    with pytest.raises(IntegrityError):
        await Connection.create(project=project, domain=f"t-{uuid.uuid4().hex[:8]}.example", token=taken.token)
    site = await perezvon_app.intake.sites.by_token(taken.token)
    assert site is not None and site.id == taken.id


REFUSED_RECIPIENT = {
    "ru": "Выберите пользователя этого подключения с e-mail.",
    "en": "Choose a user of this connection with an e-mail address.",
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_site_code_is_mailed_only_to_users_of_the_connection(perezvon_app, live_admin, lang):
    project = await Project.create(name="Code by mail")
    connection = await Connection.create(project=project, domain=f"mail-{uuid.uuid4().hex[:8]}.example")
    elsewhere = await Connection.create(project=project, domain=f"other-{uuid.uuid4().hex[:8]}.example")
    member = await make_user(level="view", connection=connection)
    stranger = await make_user(level="full", connection=elsewhere)  # a user, but of another connection
    editor = await make_user(level="edit", connection=connection)
    outbox = perezvon_app.settings.data_dir / "outbox"
    url = f"/connections/{connection.id}/settings/code"

    def mailed_to(address: str) -> bool:
        return any(address in p.read_text(errors="replace") for p in outbox.glob("*site_snippet*.eml"))

    async with signed_in_over_http(live_admin, editor, lang) as client:
        page = await client.get(url)
        assert member.email in page.text and stranger.email not in page.text
        refused = await client.post(
            url, data={"csrf_token": csrf_of(page.text), "action": "email", "user_id": str(stranger.id)}
        )
        assert refused.status_code == 400
        assert REFUSED_RECIPIENT[lang] in _errors(refused.text)
        assert not mailed_to(stranger.email)
        sent = await client.post(
            url, data={"csrf_token": csrf_of(page.text), "action": "email", "user_id": str(member.id)}
        )
        assert sent.status_code == 303
    assert mailed_to(member.email)
