"""Recording storage (docs/recordings.md): the project quota and its policy, retention per connection,
S3-compatible storage, the signed link of the success e-mail, and the admin forms.

The S3 tests run against a real S3 HTTP server on a local port: moto's ``ThreadedMotoServer`` (PyPI,
``moto[server]``). MinIO would be the first choice, but neither PyPI nor Debian ships the MinIO server
(PyPI's ``minio`` is only the client SDK, and Debian has no ``minio`` package), and this machine cannot
download binaries from elsewhere. moto speaks the same S3 REST API over HTTP (signatures, buckets,
multipart uploads), so the store's aioboto3 client is exercised exactly as against MinIO or AWS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import re
import uuid
import wave

import boto3
import pytest
from moto.server import ThreadedMotoServer
from test_admin_helpers import csrf_of, login, make_call, make_user

from perezvon.core import recordings
from perezvon.core.models import Attempt, Call, Connection, GrantLevel, NotificationRecipient, Project
from perezvon.core.recordings import (
    GB,
    S3_REF,
    S3RecordingStore,
    enforce,
    recording_store,
    recordings_root,
    signed_link,
)
from perezvon.core.testing import free_port_in
from perezvon.plugins.mail.compose import Composer
from perezvon.plugins.mail.notifier import MailNotifier

FROM = "Perezvon <robot@perezvon.example>"


def write_wav(path, frames=500):
    """A real WAV of ``44 + 2 * frames`` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\1\0" * frames)
    return path


@pytest.fixture
def outbox(perezvon_app, tmp_path):
    """The registered mail notifier, swapped for one writing to this test's own outbox."""
    notifiers = perezvon_app.host.registry.notifiers
    original = notifiers["mail"]
    composer = Composer(language="ru", public_url=perezvon_app.settings.public_url, from_address=FROM)
    notifiers["mail"] = MailNotifier(composer, relay=None, outbox_dir=tmp_path / "outbox")
    yield tmp_path / "outbox"
    notifiers["mail"] = original


def messages(outbox):
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(outbox.glob("*.eml"))]


async def site(name="Recordings", **project_fields):
    project = await Project.create(name=name, **project_fields)
    connection = await Connection.create(project=project, domain=f"rec-{uuid.uuid4().hex[:10]}.example")
    return project, connection


async def recorded_call(connection, data_dir, *, days_ago, frames=500, started=None):
    """A finished call whose one attempt has a local recording that ended ``days_ago`` days ago."""
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    call = await make_call(connection, phone="+79161234567")
    file = write_wav(recordings_root(data_dir) / "test" / f"{call.id}-1.wav", frames)
    attempt = await Attempt.create(
        call=call,
        number=1,
        direction="operator_first",
        backend="simulator",
        started_at=started or ended,
        ended_at=ended,
        recording=str(file),
    )
    call.recording = str(file)
    await call.save(update_fields=["recording"])
    return call, attempt, file


# --- the quota ---------------------------------------------------------------------------------


async def test_over_the_quota_the_oldest_recordings_are_deleted_first(perezvon_app):
    data_dir = perezvon_app.settings.data_dir
    # each recording is 1044 bytes: a quota of 2500 bytes holds two of the three
    project, connection = await site(recording_quota_gb=2500 / GB, recording_policy="delete_oldest")
    now = dt.datetime.now(dt.UTC)
    made = [
        await recorded_call(connection, data_dir, days_ago=1, started=now - dt.timedelta(hours=hours))
        for hours in (30, 20, 10)
    ]

    await enforce(perezvon_app)

    oldest, *newer = made
    assert not oldest[2].exists() and all(file.exists() for _, _, file in newer)
    assert (await Attempt.get(id=oldest[1].id)).recording == "" and (await Call.get(id=oldest[0].id)).recording == ""
    assert [(await Attempt.get(id=a.id)).recording_bytes for _, a, _ in newer] == [1044, 1044]
    saved = await Project.get(id=project.id)
    assert saved.recording_bytes == 2088 and saved.recordings_over_quota_since is None


async def test_over_the_quota_with_keep_the_project_is_marked_and_its_full_users_told_once(perezvon_app, outbox):
    data_dir = perezvon_app.settings.data_dir
    project, connection = await site(name="Keepers", recording_quota_gb=1500 / GB, recording_policy="keep")
    owner = await make_user(level=GrantLevel.FULL, project=project)
    viewer = await make_user(level=GrantLevel.VIEW, project=project)
    files = [(await recorded_call(connection, data_dir, days_ago=1))[2] for _ in range(2)]

    await enforce(perezvon_app)
    await enforce(perezvon_app)  # still over the quota: nobody is told again

    assert all(file.exists() for file in files)
    saved = await Project.get(id=project.id)
    assert saved.recordings_over_quota_since is not None and saved.recording_bytes == 2088
    sent = messages(outbox)
    assert len(sent) == 1 and sent[0]["To"] == owner.email and viewer.email not in str(sent[0]["To"])
    text = sent[0].get_body(("plain",)).get_content()
    assert "Записи разговоров занимают 2 KB из 1 KB" in text and f"/projects/{project.id}" in text

    # the quota raised: the mark goes, and a later overrun is a new episode with a new message
    await Project.filter(id=project.id).update(recording_quota_gb=1.0)
    await enforce(perezvon_app)
    saved = await Project.get(id=project.id)
    assert saved.recordings_over_quota_since is None and saved.recording_quota_told == []
    await Project.filter(id=project.id).update(recording_quota_gb=1500 / GB)
    await enforce(perezvon_app)
    assert len(messages(outbox)) == 2


# --- retention ---------------------------------------------------------------------------------


async def test_retention_per_connection_overrides_the_deployment_default(perezvon_app):
    data_dir = perezvon_app.settings.data_dir
    assert perezvon_app.settings.recording_retention_days == 92
    _, short = await site()
    _, default = await site()
    _, forever = await site()
    await Connection.filter(id=short.id).update(recording_retention_days=5)
    await Connection.filter(id=forever.id).update(recording_retention_days=0)
    short_old = await recorded_call(short, data_dir, days_ago=10)
    short_new = await recorded_call(short, data_dir, days_ago=2)
    default_mid = await recorded_call(default, data_dir, days_ago=10)
    default_old = await recorded_call(default, data_dir, days_ago=100)
    forever_old = await recorded_call(forever, data_dir, days_ago=1000)

    counts = await enforce(perezvon_app)

    assert counts["expired"] >= 2
    assert not short_old[2].exists() and not default_old[2].exists()
    assert short_new[2].exists() and default_mid[2].exists() and forever_old[2].exists()
    assert (await Attempt.get(id=short_old[1].id)).recording == ""
    assert (await Call.get(id=default_old[0].id)).recording == ""
    assert (await Attempt.get(id=forever_old[1].id)).recording == str(forever_old[2])


def test_the_periodic_job_is_registered_every_ten_minutes():
    from perezvon.core import builtin
    from perezvon.core.registry import JobRegistry

    functions, periodic = {}, {}
    builtin.perezvon_jobs(JobRegistry("core", functions, periodic))
    assert periodic["core.recordings"] == 10 and "core.recordings" in functions


# --- S3 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    port = free_port_in(21000, 21999)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_server, perezvon_app):
    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    client.create_bucket(Bucket=bucket)
    settings = dataclasses.replace(
        perezvon_app.settings,
        recording_storage="s3",
        s3_endpoint_url=s3_server,
        s3_bucket=bucket,
        s3_access_key="k",
        s3_secret_key="s",
    )
    store = S3RecordingStore(settings)
    # the running app uses it as its store for the test (the engine, the admin, the job)
    key = id(perezvon_app.settings)
    before = recordings._stores.get(key)
    recordings._stores[key] = store
    yield store, client, bucket
    if before is None:
        recordings._stores.pop(key, None)
    else:
        recordings._stores[key] = before


async def test_s3_upload_download_and_delete_against_a_real_s3_server(s3_store, perezvon_app):
    store, client, bucket = s3_store
    file = write_wav(recordings_root(perezvon_app.settings.data_dir) / "2026/12/05" / "call-s3-1.wav", 800)
    content = file.read_bytes()

    ref, size = await store.adopt(file)

    assert ref == S3_REF + "recordings/2026/12/05/call-s3-1.wav" and size == len(content)
    assert not file.exists()  # the local copy goes once the object is stored
    stored = client.get_object(Bucket=bucket, Key=ref.removeprefix(S3_REF))
    assert stored["Body"].read() == content and stored["ContentType"] == "audio/wav"
    assert await store.read(ref) == content and await store.size(ref) == size and store.available(ref)

    await store.delete(ref)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert await store.read(ref) is None and await store.size(ref) == 0


async def test_a_call_recorded_into_s3_is_linked_from_the_success_email_and_expires_from_the_bucket(
    s3_store, perezvon_app, perezvon_client, perezvon_site, perezvon_run_jobs, new_phone, outbox
):
    """Over the real intake, the simulator and the worker: the engine uploads, the e-mail links, the job deletes."""
    store, client, bucket = s3_store
    await NotificationRecipient.create(connection=perezvon_site, email="boss@example.com")
    response = await perezvon_client.post(
        "/api/v1/leads", json={"token": perezvon_site.token, "phone": new_phone(), "consent": True}
    )
    assert response.status_code == 201, response.text
    await perezvon_run_jobs()
    call = await Call.get(id=response.json()["call_id"])
    assert call.display_status == "successful" and call.recording.startswith(S3_REF)
    attempt = await Attempt.get(call_id=call.id, recording=call.recording)
    key = call.recording.removeprefix(S3_REF)
    assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == attempt.recording_bytes > 44

    (message,) = [m for m in messages(outbox) if "boss@example.com" in str(m["To"])]
    text = message.get_body(("plain",)).get_content()
    assert "Прослушать запись разговора" in text
    link = re.search(r"(https?://\S+/recordings/\S+)", text).group(1)
    path = link.split("://", 1)[1].split("/", 1)[1]
    html = message.get_body(("html",)).get_content()
    assert f'href="{link}"' in html and "Прослушать запись разговора" in html
    played = await perezvon_client.get("/" + path)
    assert played.status_code == 200 and played.content.startswith(b"RIFF")
    assert played.headers["content-type"] == "audio/wav"
    # the admin's own player reads the object too
    viewer = await make_user(level=GrantLevel.VIEW, connection=perezvon_site)
    await login(perezvon_client, viewer)
    assert (await perezvon_client.get(f"/calls/{call.id}/recording")).content == played.content

    # past the connection's retention the object leaves the bucket and the link says it is gone
    await Connection.filter(id=perezvon_site.id).update(recording_retention_days=1)
    await Attempt.filter(id=attempt.id).update(ended_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    await enforce(perezvon_app)
    # this call's object only: the workers may also have run calls other tests left queued,
    # which record into the same bucket while this test owns the store
    kept = [entry["Key"] for entry in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert key not in kept
    assert (await Call.get(id=call.id)).recording == ""
    gone = await perezvon_client.get("/" + path)
    assert gone.status_code == 410


# --- the signed link ---------------------------------------------------------------------------


async def test_the_signed_link_works_until_it_expires_and_refuses_tampering(perezvon_app, perezvon_client):
    settings = perezvon_app.settings
    perezvon_client.cookies.set("pz_lang", "ru")
    _, connection = await site()
    call, _, file = await recorded_call(connection, settings.data_dir, days_ago=0)
    link = signed_link(settings, str(call.id))
    path = link.removeprefix(settings.public_url)
    _, _, call_id, expires, signature = path.split("/")

    ok = await perezvon_client.get(path)
    assert ok.status_code == 200 and ok.content == file.read_bytes()
    assert int(expires) - dt.datetime.now(dt.UTC).timestamp() == pytest.approx(72 * 3600, abs=60)

    forged = "A" + signature[1:] if signature[0] != "A" else "B" + signature[1:]
    later = str(int(expires) + 3600)
    other, _, _ = await recorded_call(connection, settings.data_dir, days_ago=0)
    for bad in (
        f"/recordings/{call_id}/{expires}/{forged}",  # signature changed
        f"/recordings/{call_id}/{later}/{signature}",  # expiry moved
        f"/recordings/{other.id}/{expires}/{signature}",  # another call's recording
        f"/recordings/{call_id}/soon/{signature}",
    ):
        refused = await perezvon_client.get(bad)
        assert refused.status_code == 403, bad
        assert "Ссылка на запись разговора недействительна." in refused.text and "not valid" not in refused.text

    stale = signed_link(settings, str(call.id), now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=73))
    expired = await perezvon_client.get(stale.removeprefix(settings.public_url))
    assert expired.status_code == 410 and "Срок действия ссылки на запись разговора истёк." in expired.text


# --- the admin ---------------------------------------------------------------------------------


async def test_the_project_page_edits_the_quota_and_refuses_bad_values(perezvon_client):
    project, _ = await site(name="Quota admin")
    csrf = await login(perezvon_client, await make_user(level=GrantLevel.FULL, project=project))
    url = f"/projects/{project.id}"
    base = {"csrf_token": csrf, "name": "Quota admin", "payment_type": "prepaid"}
    for bad in (
        {"recording_quota_gb": "-1"},
        {"recording_quota_gb": "lots"},
        {"recording_quota_gb": "0"},
        {"recording_policy": "shred"},
    ):
        refused = await perezvon_client.post(url, data={**base, **bad})
        assert refused.status_code == 400, bad
        assert 'class="error"' in refused.text
    unchanged = await Project.get(id=project.id)
    assert unchanged.recording_quota_gb is None and unchanged.recording_policy == "delete_oldest"

    saved = await perezvon_client.post(url, data={**base, "recording_quota_gb": "2.5", "recording_policy": "keep"})
    assert saved.status_code == 303
    project = await Project.get(id=project.id)
    assert project.recording_quota_gb == 2.5 and project.recording_policy == "keep"
    perezvon_client.cookies.set("pz_lang", "ru")
    page = await perezvon_client.get(url)
    assert "Записи разговоров" in page.text and "2.50 GB" in page.text

    cleared = await perezvon_client.post(url, data={**base, "recording_quota_gb": "", "recording_policy": "keep"})
    assert cleared.status_code == 303 and (await Project.get(id=project.id)).recording_quota_gb is None


async def test_the_general_tab_edits_the_retention_and_refuses_bad_values(perezvon_client):
    project, connection = await site()
    csrf = await login(perezvon_client, await make_user(level=GrantLevel.EDIT, project=project))
    url = f"/connections/{connection.id}/settings/general"
    page = await perezvon_client.get(url)
    csrf = csrf_of(page.text)
    base = {"csrf_token": csrf, "domain": connection.domain, "is_on": "on"}
    for bad in ("-3", "4000", "a week", "1.5"):
        refused = await perezvon_client.post(url, data={**base, "recording_retention_days": bad})
        assert refused.status_code == 400, bad
    assert (await Connection.get(id=connection.id)).recording_retention_days is None
    assert (await perezvon_client.post(url, data={**base, "recording_retention_days": "30"})).status_code == 303
    assert (await Connection.get(id=connection.id)).recording_retention_days == 30
    assert (await perezvon_client.post(url, data={**base, "recording_retention_days": ""})).status_code == 303
    assert (await Connection.get(id=connection.id)).recording_retention_days is None


def test_the_deployment_settings_choose_the_store_and_refuse_bad_values(tmp_path):
    from perezvon.core.settings import Settings

    base = {"PEREZVON_DATA_DIR": str(tmp_path), "PEREZVON_SECRET_KEY": "x"}
    settings = Settings.from_env(
        {**base, "PEREZVON_RECORDING_STORAGE": "S3", "PEREZVON_S3_BUCKET": "calls", "PEREZVON_S3_SECRET_KEY": "hide"}
    )
    assert settings.recording_storage == "s3" and "hide" not in repr(settings)
    assert isinstance(recording_store(settings), S3RecordingStore)
    assert type(recording_store(Settings.from_env(base))) is recordings.RecordingStore
    for bad, message in (
        ({"PEREZVON_RECORDING_STORAGE": "ftp"}, "local or s3"),
        ({"PEREZVON_RECORDING_STORAGE": "s3"}, "PEREZVON_S3_BUCKET"),
        ({"PEREZVON_RECORDING_LINK_HOURS": "0"}, "LINK_HOURS"),
    ):
        with pytest.raises(ValueError, match=message):
            Settings.from_env({**base, **bad})


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/x/1/abc",
        "/recordings/%00/1/abc",
        "/recordings/00000000-0000-0000-0000-000000000000/99999999999999999999999999/abc",
        "/recordings/00000000-0000-0000-0000-000000000000/-1/" + "a" * 5000,
        "/recordings/%ED%A0%80/NaN/abc",
        "/recordings/00000000-0000-0000-0000-000000000000/0/%00",
    ],
)
async def test_a_hostile_recording_link_is_refused_with_403(perezvon_client, path):
    """NUL, a lone surrogate, NaN, a huge expiry or signature: refused as not valid, never a 5xx."""
    assert (await perezvon_client.get(path)).status_code == 403
