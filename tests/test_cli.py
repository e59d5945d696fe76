"""The ``perezvon`` command as a user runs it: real processes, real HTTP, real signals."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

PERZVON = [sys.executable, "-m", "perezvon.core.cli"]
ROOT = Path(__file__).resolve().parent.parent


_ports_given: set[int] = set()


def free_port() -> int:
    """A free loopback port; from PEREZVON_TEST_PORTS ("25000-25099") when set, each handed out once."""
    low, _, high = os.environ.get("PEREZVON_TEST_PORTS", "").partition("-")
    for port in range(int(low), int(high or low) + 1) if low else [0]:
        if port in _ports_given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            found = sock.getsockname()[1]
        _ports_given.add(found)
        return found
    raise RuntimeError("no free port left in PEREZVON_TEST_PORTS")


def redis_servers_under(path: Path) -> list[int]:
    """PIDs of redis-server processes whose config lives under ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "redis-server" in cmdline and str(path) in cmdline and "State:\tZ" not in status:
            found.append(int(proc.name))
    return found


def demo_env(tmp_path: Path) -> dict:
    env = {**os.environ, "PEREZVON_DATA_DIR": str(tmp_path / "var"), "PEREZVON_LOG_LEVEL": "WARNING"}
    env.setdefault("PEREZVON_PLUGINS", str(ROOT / "tests" / "plugins.toml"))
    for name in ("PEREZVON_DATABASE_URL", "PEREZVON_REDIS_URL"):  # the embedded default, as on a fresh machine
        env.pop(name, None)
    return env


@contextlib.contextmanager
def running_server(env: dict, cwd: Path):
    """``perezvon serve`` on free ports, seeded with ``perezvon demo --json``; stopped with Ctrl-C (SIGINT)."""
    port = free_port()
    env = {**env, "PEREZVON_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen(
        [*PERZVON, "serve", "--port", str(port), "--smtp-port", str(free_port())],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # read its output all along: a full pipe would block the server and look like a hang
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, "".join(lines)
                try:
                    if client.get(f"{base_url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not become healthy"
                time.sleep(0.1)
            seeded = subprocess.run(
                [*PERZVON, "demo", "--json"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
            )
            assert seeded.returncode == 0, seeded.stderr
            yield base_url, json.loads(seeded.stdout), client
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            reader.join(5)
            pytest.fail("serve did not stop on Ctrl-C within 20 s; it printed:\n" + "".join(lines))
    reader.join(5)
    output = "".join(lines)
    assert server.returncode == 0, output
    assert "Perezvon stopped." in output
    assert "Traceback" not in output, output
    data_dir = Path(env["PEREZVON_DATA_DIR"]).resolve()
    assert redis_servers_under(data_dir) == [], "the embedded Redis was left running"


@pytest.mark.parametrize("command", ["serve", "web"])
def test_a_taken_web_port_ends_the_process_with_an_error_and_leaves_nothing_running(tmp_path, command):
    """uvicorn exits the process when it cannot bind; ours must still stop what it started, and say why."""
    env = demo_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = ["--smtp-port", str(free_port())] if command == "serve" else []
        started = time.monotonic()
        ended = subprocess.run(
            [*PERZVON, command, "--port", str(port), *extra],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = ended.stdout + ended.stderr
    assert ended.returncode == 1, output
    assert time.monotonic() - started < 30, output
    assert f"perezvon: error: the web server could not start on 127.0.0.1:{port}" in ended.stderr
    assert "address already in use" in output
    assert "is running" not in ended.stdout  # never claims to serve what it does not
    assert "Traceback" not in output, output
    assert redis_servers_under(Path(env["PEREZVON_DATA_DIR"]).resolve()) == [], "the embedded Redis was left running"


def test_serve_takes_a_lead_calls_back_and_stops_cleanly(tmp_path):
    env = demo_env(tmp_path)
    with running_server(env, tmp_path) as (base_url, demo, client):
        assert set(demo) >= {"staff_phone", "staff_password", "project_id", "connection_id", "site_token", "admin_url"}
        assert demo["admin_url"] == f"{base_url}/"
        health = client.get(f"{base_url}/healthz").json()
        assert health["ok"] is True and health["workers"] and health["telephony"] == "ok"
        created = client.post(
            f"{base_url}/api/v1/leads",
            headers={"Origin": "http://localhost:3000"},
            json={"token": demo["site_token"], "phone": "8 916 555-12-34", "consent": True},
        )
        assert created.status_code == 201, created.text
        state_url = f"{base_url}/api/v1/calls/{created.json()['call_id']}/state"
        deadline = time.monotonic() + 20
        while (state := client.get(state_url, params={"token": demo["site_token"]}).json())["finished"] is False:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["status"] == "successful" and state["tags"] == {"unique": True, "target": True}


def test_sigterm_also_stops_serve_and_its_redis(tmp_path):
    env = demo_env(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [*PERZVON, "serve", "--port", str(port), "--smtp-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not redis_servers_under(tmp_path):
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0
    assert redis_servers_under(tmp_path) == []


def test_a_killed_serve_leaves_no_redis_behind(tmp_path):
    env = demo_env(tmp_path)
    server = subprocess.Popen(
        [*PERZVON, "serve", "--port", str(free_port()), "--smtp-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not redis_servers_under(tmp_path):
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    server.kill()  # SIGKILL: no clean-up code runs; the child dies with its parent
    server.wait()
    deadline = time.monotonic() + 10
    while redis_servers_under(tmp_path):
        assert time.monotonic() < deadline, "redis-server outlived a SIGKILLed parent"
        time.sleep(0.05)


def test_demo_is_idempotent_and_prints_json(tmp_path):
    env = demo_env(tmp_path)
    runs = [
        subprocess.run([*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first == second
    assert len(first["site_token"]) >= 32 and first["staff_phone"].startswith("+7")
    assert redis_servers_under(tmp_path) == []


def test_a_worker_asked_for_an_unknown_queue_says_which_there_are_and_starts_nothing(tmp_path):
    run = subprocess.run(
        [*PERZVON, "worker", "--queue", "pushes"],
        env=demo_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Perezvon worker is running" not in run.stdout
    assert "--queue" in run.stderr and "'callbacks'" in run.stderr and "'deliveries'" in run.stderr
    assert redis_servers_under(tmp_path) == []


def test_createuser_and_migrate(tmp_path):
    env = demo_env(tmp_path)
    migrated = subprocess.run([*PERZVON, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout
    made = subprocess.run(
        [
            *PERZVON,
            "createuser",
            "--phone",
            "8 (916) 000-11-22",
            "--email",
            "op@example.com",
            "--first-name",
            "Олег",
            "--staff",
            "--password",
            "correct horse",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert "Created staff user +79160001122" in made.stdout
    again = subprocess.run(
        [*PERZVON, "createuser", "--phone", "+79160001122", "--password", "correct horse"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    short = subprocess.run(
        [*PERZVON, "createuser", "--phone", "+79160001123", "--password", "short"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad = subprocess.run(
        [*PERZVON, "createuser", "--phone", "12", "--password", "long enough"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "phone" in bad.stderr.lower()


def test_web_and_worker_run_apart(tmp_path):
    """``perezvon web`` and ``perezvon worker`` as separate processes, as on several machines."""
    env = demo_env(tmp_path)
    port = free_port()
    env["PEREZVON_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    assert subprocess.run([*PERZVON, "migrate"], env=env, cwd=tmp_path, capture_output=True).returncode == 0
    demo = json.loads(
        subprocess.run(
            [*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
    )
    web = subprocess.Popen(
        [*PERZVON, "web", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = None
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert web.poll() is None, web.stdout.read()
                try:  # no worker yet: /healthz answers 503, naming only the workers as down
                    if client.get(f"{base_url}/healthz").json().get("down") == ["workers"]:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.1)
            created = client.post(
                f"{base_url}/api/v1/leads", json={"token": demo["site_token"], "phone": "+79165550000", "consent": True}
            )
            assert created.status_code == 201, created.text
            state_url = f"{base_url}/api/v1/calls/{created.json()['call_id']}/state"
            assert client.get(state_url, params={"token": demo["site_token"]}).json()["phase"] == "waiting"
            # the lead waits, durable, until a worker comes up
            worker = subprocess.Popen(
                [*PERZVON, "worker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            deadline = time.monotonic() + 30
            while not (state := client.get(state_url, params={"token": demo["site_token"]}).json())["finished"]:
                assert worker.poll() is None, worker.stdout.read()
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
            assert state["status"] == "successful"
            assert client.get(f"{base_url}/healthz").json()["workers"]
    finally:
        for process in (worker, web):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    code = process.wait(timeout=20)
                except subprocess.TimeoutExpired:  # stuck past its own shutdown limit: show where
                    process.kill()
                    code = process.wait()
                assert code == 0, process.stdout.read()
    assert redis_servers_under(tmp_path) == []


def test_the_pushes_run_in_a_worker_process_of_their_own(tmp_path):
    """``perezvon worker --queue callbacks`` places the calls and leaves the pushes queued;
    ``perezvon worker --queue deliveries`` (under ``nice``, as docs/deploy.md shows) sends them."""
    import redis

    env = demo_env(tmp_path)
    port = free_port()
    env["PEREZVON_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    demo = json.loads(
        subprocess.run(
            [*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
    )
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, command: list[str]) -> None:
        processes[name] = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    base_url = f"http://127.0.0.1:{port}"
    try:
        start("web", [*PERZVON, "web", "--port", str(port)])  # it starts the embedded Redis the others use
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                for name, process in processes.items():
                    assert process.poll() is None, f"{name}: {process.stdout.read()}"
                try:
                    down = client.get(f"{base_url}/healthz").json()["down"]
                except httpx.TransportError:
                    down = None
                if down == ["workers"] and "callbacks" not in processes:  # up, with no worker yet
                    start("callbacks", [*PERZVON, "worker", "--queue", "callbacks"])
                if down == ["deliveries"]:  # calls are placed; nothing would send their pushes
                    break
                assert time.monotonic() < deadline, f"healthz: {down}"
                time.sleep(0.1)
            store = redis.Redis(unix_socket_path=str(tmp_path / "var" / "redis" / "redis.sock"))
            assert store.zcard("arq:queue:deliveries") == 0
            created = client.post(
                f"{base_url}/api/v1/leads", json={"token": demo["site_token"], "phone": "+79165550001", "consent": True}
            )
            assert created.status_code == 201, created.text
            state_url = f"{base_url}/api/v1/calls/{created.json()['call_id']}/state"
            deadline = time.monotonic() + 30
            while not (state := client.get(state_url, params={"token": demo["site_token"]}).json())["finished"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
            assert state["status"] == "successful"  # placed with no deliveries worker running
            queued = store.zcard("arq:queue:deliveries")
            assert queued > 0  # its pushes and notifications wait for their own worker

            start("deliveries", ["nice", "-n", "10", *PERZVON, "worker", "--queue", "deliveries"])
            deadline = time.monotonic() + 30
            while store.zcard("arq:queue:deliveries"):
                assert processes["deliveries"].poll() is None, processes["deliveries"].stdout.read()
                assert time.monotonic() < deadline, f"{store.zcard('arq:queue:deliveries')} of {queued} still queued"
                time.sleep(0.1)
            store.close()
            health = client.get(f"{base_url}/healthz")
            assert health.status_code == 200, health.text  # both queues have a process now
            assert len(health.json()["workers"]) == 1 and len(health.json()["deliveries"]) == 1
    finally:
        outputs = {}
        for name, process in reversed(processes.items()):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            outputs[name] = process.stdout.read()
    for name, process in processes.items():
        assert process.returncode == 0, outputs[name]
    assert "Perezvon worker is running (the callbacks queue only)." in outputs["callbacks"]
    assert "Perezvon worker is running (the deliveries queue only)." in outputs["deliveries"]
    assert redis_servers_under(tmp_path) == []


def test_the_public_url_comes_from_the_option_the_variable_or_the_listening_address():
    from perezvon.core.cli import build_parser, public_url_of, url_of

    assert url_of("0.0.0.0", 9000) == "http://localhost:9000"
    assert url_of("::", 9000) == "http://localhost:9000"
    assert url_of("::1", 9000) == "http://[::1]:9000"
    assert url_of("127.0.0.1", 9000) == "http://127.0.0.1:9000"
    parser = build_parser()
    serve = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9000"])
    assert public_url_of(serve, env={}) == ("http://localhost:9000", "--host/--port")
    assert public_url_of(serve, env={"PEREZVON_PUBLIC_URL": "https://call.example.com"})[0] == (
        "https://call.example.com"
    )
    explicit = parser.parse_args(["web", "--port", "9000", "--public-url", "https://a.example.com"])
    assert public_url_of(explicit, env={"PEREZVON_PUBLIC_URL": "https://b.example.com"}) == (
        "https://a.example.com",
        "--public-url",
    )
    assert public_url_of(parser.parse_args(["worker"]), env={}) == (None, "the default")
    assert public_url_of(parser.parse_args(["demo"]), env={}) == (None, "the default")


async def test_serve_on_another_port_serves_the_demo_and_the_site_script_on_it_with_no_setting(tmp_path, page):
    env = demo_env(tmp_path)
    env.pop("PEREZVON_PUBLIC_URL", None)
    seeded = subprocess.run(
        [*PERZVON, "demo", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert seeded.returncode == 0, seeded.stderr
    token = json.loads(seeded.stdout)["site_token"]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*PERZVON, "serve", "--port", str(port), "--smtp-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("Demo site:") for line in lines):
            assert server.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "serve printed no demo site: " + "".join(lines)
            await asyncio.sleep(0.1)
        output = "".join(lines)
        assert f"Perezvon is running: {base_url}" in output
        assert f"The site script is served as {base_url}/inject?token=<site token>" in output
        demo_url = next(line for line in lines if line.startswith("Demo site:")).split(": ", 1)[1].strip()
        assert demo_url == f"{base_url}/site/try?token={token}"
        async with httpx.AsyncClient(timeout=10) as client:
            demo_page = await client.get(demo_url)
            assert demo_page.status_code == 200
            assert f'<script async src="{base_url}/inject?token={token}"></script>' in demo_page.text
            loader = await client.get(f"{base_url}/inject", params={"token": token})
            assert loader.status_code == 200 and f'"b":"{base_url}"' in loader.text  # the API the apps call
            assert ":8000" not in demo_page.text + loader.text
        # the printed page, in a browser: the widget opens from its HASH link, all of it from this port
        asked = []
        page.on("request", lambda request: asked.append(request.url))
        await page.goto(demo_url)
        await page.wait_for_function("window.Perezvon && window.Perezvon.readyAt && window.Perezvon.readyAt.widget")
        await page.click("a[href='#callme']")
        await page.locator("[data-perezvon=widget] .box").wait_for(timeout=20000)
        assert [url for url in asked if "/site/" in url or "/inject" in url]
        assert all(url.startswith(base_url) for url in asked if "/site/" in url or "/inject" in url)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        reader.join(5)
    assert server.returncode == 0, "".join(lines)


def _sign_in(client: httpx.Client, base_url: str, phone: str, password: str) -> None:
    page = client.get(f"{base_url}/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed = client.post(
        f"{base_url}/login", data={"phone": phone, "password": password, "csrf_token": token, "next": "/profile"}
    )
    assert signed.status_code == 303, signed.text


def _leave_lead_and_wait(client: httpx.Client, base_url: str, token: str, phone: str) -> str:
    created = client.post(
        f"{base_url}/api/v1/leads",
        headers={"Origin": "http://localhost:3000"},
        json={"token": token, "phone": phone, "consent": True},
    )
    assert created.status_code == 201, created.text
    call_id = created.json()["call_id"]
    deadline = time.monotonic() + 30
    while not (state := client.get(f"{base_url}/api/v1/calls/{call_id}/state", params={"token": token}).json())[
        "finished"
    ]:
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["status"] == "successful"
    return call_id


def test_a_restart_of_serve_keeps_a_signed_in_user_signed_in(tmp_path):
    """The embedded Redis keeps its data under the data dir: the session cookie of a user signed in
    before a Ctrl-C still opens the admin after ``perezvon serve`` starts again; and the jobs kept
    with it run no call twice."""
    import sqlite3

    env = demo_env(tmp_path)
    browser = httpx.Client(timeout=5)  # one cookie jar across both runs, as a browser keeps its cookies
    with running_server(env, tmp_path) as (base_url, demo, client):
        _sign_in(browser, base_url, demo["staff_phone"], demo["staff_password"])
        assert browser.get(f"{base_url}/profile").status_code == 200
        before = _leave_lead_and_wait(client, base_url, demo["site_token"], "8 916 555-12-01")
    with running_server(env, tmp_path) as (base_url, demo, client):
        profile = browser.get(f"{base_url}/profile")
        assert profile.status_code == 200, "the restart signed the user out"
        assert demo["staff_phone"] in profile.text
        # the queue that came back is worked through before this lead's job, which comes after it
        after = _leave_lead_and_wait(client, base_url, demo["site_token"], "8 916 555-12-02")
    browser.close()
    assert list((Path(env["PEREZVON_DATA_DIR"]) / "redis").glob("appendonly*")), "kept under the data dir"
    with contextlib.closing(sqlite3.connect(Path(env["PEREZVON_DATA_DIR"]) / "perezvon.sqlite3")) as db:
        attempts = dict(db.execute("SELECT call_id, COUNT(*) FROM attempts GROUP BY call_id").fetchall())
    assert {str(k).replace("-", ""): v for k, v in attempts.items()} == {
        before.replace("-", ""): 1,
        after.replace("-", ""): 1,
    }


async def test_a_browser_signed_in_before_a_restart_of_serve_is_still_signed_in_after(tmp_path, page):
    """The same as above in Chromium: signed in through the login form, ``perezvon serve`` stopped
    with Ctrl-C and started again, the browser opens the profile with the cookie it kept."""
    from tests.test_admin_browser import sign_in

    env = demo_env(tmp_path)
    with running_server(env, tmp_path) as (base_url, demo, _client):
        await sign_in(page, base_url, demo["staff_phone"], demo["staff_password"])
        await page.goto(f"{base_url}/profile")
        assert "/login" not in page.url
    with running_server(env, tmp_path) as (base_url, demo, _client):  # a new port: cookies are per host
        response = await page.goto(f"{base_url}/profile")
        assert response is not None and response.status == 200
        assert "/login" not in page.url, "the restart signed the browser out"
        assert demo["staff_phone"] in await page.content()
