"""The outgoing-request guard (core/outgoing.py): webhooks, integrations and the installation check
reach only public addresses, unless the deployment's allow-list names the network.

The test app's allow-list names 127.0.0.1 (core/testing.py: the tests' fake services listen
there); :func:`public_addresses_only` clears it, as a deployment without one has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import uuid

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route
from test_admin_checks import field_error, stored
from test_admin_helpers import login, make_user

from perezvon.core import outgoing
from perezvon.core.integrations import HttpPush, close_clients
from perezvon.core.models import Connection, Delivery, Project
from perezvon.core.settings import Settings
from perezvon.web.admin.views.settings import check_installation
from tests.test_integrations import Service, enable, make_deferred_jobs_due, post_lead

SECRET = "whsec-outgoing-guard-secret"


@pytest.fixture
async def public_addresses_only(perezvon_app):
    """No allow-list for the length of the test, then the test app's one again.

    Open clients are closed both times: their pooled connections and cached names were let
    through by the other list.
    """
    await close_clients()
    outgoing.configure(())
    yield
    await close_clients()
    outgoing.configure(perezvon_app.settings.outgoing_allow)


@pytest.fixture
async def service():
    async with Service() as running:
        yield running


REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.1.2.3": "private",
    "172.16.5.4": "private",
    "192.168.0.10": "private",
    "100.64.0.1": "reserved",  # carrier-grade NAT
    "169.254.169.254": "cloud metadata",
    "169.254.10.1": "link-local",
    "0.0.0.0": "unspecified",
    "224.0.0.251": "multicast",
    "255.255.255.255": "private",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fd12:3456::1": "unique-local",
    "fd00:ec2::254": "cloud metadata",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",  # an IPv4 address mapped into IPv6 is judged as itself
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "cloud metadata",
    "64:ff9b:1::a00:1": "private",  # local-use NAT64
    "64:ff9b::a00:1": "private",  # NAT64 to 10.0.0.1
    "64:ff9b::a9fe:a9fe": "cloud metadata",  # NAT64 to 169.254.169.254
    "2002:a00:1::": "private",  # 6to4 of 10.0.0.1
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


def test_private_loopback_link_local_and_metadata_addresses_are_refused(public_addresses_only):
    for text, kind in REFUSED.items():
        reason = outgoing.refusal(ipaddress.ip_address(text))
        assert reason is not None and kind in reason, (text, reason)
    for text in PUBLIC:
        assert outgoing.refusal(ipaddress.ip_address(text)) is None, text


def test_the_allow_list_opens_named_networks_but_never_the_metadata_service(public_addresses_only):
    outgoing.configure(["10.20.0.0/16", "192.168.1.5", "169.254.0.0/16"])
    assert outgoing.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert outgoing.refusal(ipaddress.ip_address("192.168.1.5")) is None
    assert outgoing.refusal(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert outgoing.refusal(ipaddress.ip_address("10.21.0.1")) is not None
    assert outgoing.refusal(ipaddress.ip_address("192.168.1.6")) is not None
    assert outgoing.refusal(ipaddress.ip_address("169.254.10.1")) is None
    assert "metadata" in outgoing.refusal(ipaddress.ip_address("169.254.169.254"))
    with pytest.raises(ValueError, match=r"'crm\.local' is not an IP address or network"):
        outgoing.configure(["10.0.0.0/8", "crm.local"])


def test_the_allow_list_is_a_deployment_setting(tmp_path):
    settings = Settings.from_env(
        env={"PEREZVON_OUTGOING_ALLOW": "10.20.0.0/16, 192.168.1.5"}, data_dir=tmp_path, secret_key="k"
    )
    assert settings.outgoing_allow == ("10.20.0.0/16", "192.168.1.5")
    assert Settings.from_env(env={}, data_dir=tmp_path, secret_key="k").outgoing_allow == ()


async def test_a_push_to_a_private_address_is_refused_before_any_connection(public_addresses_only, service):
    port = service.url.rsplit(":", 1)[1]
    push = HttpPush(timeout=5)
    targets = {
        service.url + "/hook": "127.0.0.1",
        f"http://localhost:{port}/hook": None,  # a name that resolves to loopback
        f"http://[::1]:{port}/hook": "::1",
        "http://10.1.2.3/hook": "10.1.2.3",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
        "http://[::ffff:127.0.0.1]/hook": "127.0.0.1",
    }
    try:
        for url, address in targets.items():
            with pytest.raises(outgoing.AddressNotAllowed) as refused:
                await push.send("POST", url, json={"event": "lead_created"})
            assert not refused.value.retry and str(refused.value).startswith("address not allowed: "), url
            if address is not None:
                assert refused.value.address == address
            else:
                assert refused.value.host == "localhost" and ipaddress.ip_address(refused.value.address).is_loopback
    finally:
        await push.close()
    assert service.requests == []  # nothing reached the local service


async def test_the_test_allow_list_is_what_lets_local_services_through(service):
    service.default = (200, {"ok": True})
    push = HttpPush(timeout=5)
    try:
        response = await push.send("POST", service.url + "/hook", json={})
        assert response.status_code == 200
        with pytest.raises(outgoing.AddressNotAllowed):  # ::1 is not on the tests' list
            await push.send("POST", f"http://[::1]:{service.url.rsplit(':', 1)[1]}/hook", json={})
    finally:
        await push.close()
    assert len(service.requests) == 1


async def test_a_webhook_to_a_private_address_is_a_stored_failure_not_retried(
    perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, public_addresses_only, service
):
    await enable(perezvon_site, "webhooks", url=service.url + "/hook", secret=SECRET, events=["lead_created"])
    created = await post_lead(perezvon_client, perezvon_site, new_phone())
    await perezvon_run_jobs()
    await make_deferred_jobs_due(perezvon_app.redis)
    await perezvon_run_jobs()
    rows = await Delivery.filter(call_id=created["call_id"], integration_key="webhooks")
    assert len(rows) == 1  # one try: trying again cannot help
    assert (rows[0].ok, rows[0].status, rows[0].next_try_at) == (False, None, None)
    assert rows[0].response == "address not allowed: 127.0.0.1 (a loopback address)"
    assert service.requests == []
    stale = [key async for key in perezvon_app.redis.scan_iter(match="arq:*") if not key.startswith(b"arq:cron")]
    if stale:
        await perezvon_app.redis.delete(*stale)


@contextlib.asynccontextmanager
async def site_redirecting_to(target: str):
    """A local site whose home page redirects to ``target``, and a page that carries the snippet."""

    async def home(request):
        return RedirectResponse(target, status_code=302)

    async def landing(request):
        return HTMLResponse("<html><body>no snippet here</body></html>")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/", home), Route("/landing", landing)])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task


async def test_the_installation_check_re_checks_every_redirect(perezvon_site):
    async with site_redirecting_to("/landing") as url:  # a redirect inside an allowed address is followed
        followed = await check_installation(perezvon_site, timeout=5, urls=[url])
        assert followed["status"] == 200 and not followed["found"] and followed["refused"] is None
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:9/"):
        async with site_redirecting_to(target) as url:
            result = await check_installation(perezvon_site, timeout=5, urls=[url])
        assert not result["found"] and result["refused"] is not None, target
        assert result["refused"]["address"] in target


async def test_the_installation_check_refuses_a_domain_inside_the_network(perezvon_site, public_addresses_only):
    perezvon_site.domain = "localhost"
    result = await check_installation(perezvon_site, timeout=5)
    assert not result["found"] and result["error"] == "the domain points to a private address"
    assert ipaddress.ip_address(result["refused"]["address"]).is_loopback


@pytest.fixture
async def admin(perezvon_client):
    project = await Project.create(name="Guard project")
    connection = await Connection.create(project=project, domain=f"guard-{uuid.uuid4().hex[:8]}.example")
    csrf = await login(perezvon_client, await make_user(level="full", project=project))
    perezvon_client.cookies.set("pz_lang", "ru")
    yield connection, csrf
    perezvon_client.cookies.delete("pz_lang")


async def test_a_webhook_url_inside_the_network_is_a_form_error(perezvon_client, admin):
    connection, csrf = admin
    for url, address in (("http://169.254.169.254/hook", "169.254.169.254"), ("http://10.0.0.7:8080/in", "10.0.0.7")):
        page = await perezvon_client.post(
            f"/connections/{connection.id}/integrations/webhooks",
            data={"csrf_token": csrf, "url": url, "secret": SECRET, "events": "lead_created"},
        )
        assert page.status_code == 400
        error = field_error(page.text, "url")
        assert f"ведёт на {address}" in error and "только на публичные адреса" in error, error
        assert await stored(connection, "webhooks") is None


async def test_the_installation_check_page_says_why_it_did_not_fetch(perezvon_client, admin, public_addresses_only):
    connection, csrf = admin
    # a loopback address of its own: "localhost" may be the demo's domain already (domains are unique)
    await Connection.filter(id=connection.id).update(domain="127.0.0.2")
    page = await perezvon_client.post(
        f"/connections/{connection.id}/settings/code", data={"csrf_token": csrf, "action": "check"}
    )
    assert page.status_code == 200
    assert "Не проверено:" in page.text and "адрес во внутренней сети" in page.text


async def test_through_a_proxy_the_target_is_checked_before_sending(public_addresses_only, service, monkeypatch):
    """The proxy (here the local service, which the deployment configured) may be anywhere; what it
    would be asked to reach may not: an address in the URL, or a name that resolves inside the network."""
    monkeypatch.setenv("HTTP_PROXY", service.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    push = HttpPush(timeout=5)
    try:
        for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost/hook"):
            with pytest.raises(outgoing.AddressNotAllowed):
                await push.send("POST", url, json={})
        assert service.requests == []  # the proxy was asked nothing
        response = await push.send("POST", "http://pushes.invalid/hook", json={})  # resolved by the proxy alone
        assert response.status_code == 200 and service.requests[0].headers["host"] == "pushes.invalid"
    finally:
        await push.close()
