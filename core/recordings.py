"""The platform's recording storage: where call recordings live, how long, and how much (docs/recordings.md).

A telephony backend hands over the file its PBX wrote (:func:`keep_recording`);
the file moves under ``<data dir>/recordings/YYYY/MM/DD/``. When the attempt
is finished the engine gives it to the deployment's :class:`RecordingStore`
(:func:`recording_store`): the local store keeps it where it is, the S3 store
uploads it to an S3-compatible bucket and removes the local copy. The attempt
(and its call) remember the store's reference: a local path, or ``s3:<key>``.

:func:`enforce` (the core's periodic job ``core.recordings``) deletes recordings
past their retention (the connection's own, else ``PEREZVON_RECORDING_RETENTION_DAYS``)
and applies each project's quota: the oldest recordings are deleted, or they are
kept and the project is marked over quota and its full-access users are told once.

:func:`signed_link` makes the expiring link of the success e-mail; :func:`check_link`
verifies it (HMAC-SHA256 with the deployment's secret key over the call and the expiry).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perezvon.core.dials_first import after_the_dials

if TYPE_CHECKING:
    from perezvon.core.settings import Settings

log = logging.getLogger("perezvon.recordings")

#: a PBX finishes writing after the hang-up; wait this long for the size to settle
SETTLE_SECONDS = 3.0
#: a reference to an object in the S3 store starts with this
S3_REF = "s3:"
DELETE_OLDEST = "delete_oldest"
KEEP = "keep"
POLICIES = (DELETE_OLDEST, KEEP)
GB = 1024**3
#: how many recordings one run of the job deletes at most per rule (the next run goes on)
BATCH = 5000
MEDIA_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".gsm": "audio/x-gsm"}


def recordings_root(data_dir: Path) -> Path:
    return Path(data_dir) / "recordings"


def media_type(ref: str) -> str:
    return MEDIA_TYPES.get(Path(ref).suffix.lower(), "application/octet-stream")


async def keep_recording(
    source: Path,
    data_dir: Path,
    call_id: str,
    attempt_number: int,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    now: dt.datetime | None = None,
) -> Path | None:
    """Move the PBX's file into the storage; ``None`` (and a log line) when it never appeared."""
    source = Path(source)
    deadline = asyncio.get_running_loop().time() + settle_seconds
    last_size = -1
    while True:
        # a thousand calls can end in the same second: each look at the file (and the move after the
        # last one) waits its turn behind this process's dials (core/dials_first.py)
        await after_the_dials()
        size = source.stat().st_size if source.exists() else -1
        if size > 0 and size == last_size:
            break
        if asyncio.get_running_loop().time() >= deadline:
            if size <= 0:
                log.warning(
                    "call %s attempt %s: no recording at %s (is the recordings directory shared "
                    "with Asterisk? docs/asterisk.md)",
                    call_id,
                    attempt_number,
                    source,
                )
                return None
            break
        last_size = size
        await asyncio.sleep(0.1)
    day = (now or dt.datetime.now(dt.UTC)).strftime("%Y/%m/%d")
    target = recordings_root(data_dir) / day / f"{call_id}-{attempt_number}{source.suffix or '.wav'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(shutil.move, source, target)
    return target


# --- the stores ----------------------------------------------------------------------------------


class RecordingStore:
    """Where the recordings of a deployment live. References are what ``Attempt.recording`` holds."""

    def __init__(self, data_dir: Path) -> None:
        self.root = recordings_root(data_dir)

    async def adopt(self, file: Path) -> tuple[str, int]:
        """Take a finished recording (a file under the local root); its reference and size."""
        return str(file), file.stat().st_size

    def _local(self, ref: str) -> Path | None:
        """The local file of a reference, only when it lies inside our storage (others are not ours)."""
        if not ref or ref.startswith(S3_REF):
            return None
        path = Path(ref)
        return path if path.resolve().is_relative_to(self.root.resolve()) else None

    def available(self, ref: str) -> bool:
        """Cheap: is there (still) a recording behind this reference? Local files are looked at."""
        return bool(ref) and (ref.startswith(S3_REF) or Path(ref).is_file())

    async def read(self, ref: str) -> bytes | None:
        if not ref or ref.startswith(S3_REF):
            return None
        path = Path(ref)
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    async def size(self, ref: str) -> int:
        path = None if ref.startswith(S3_REF) else Path(ref)
        return path.stat().st_size if path is not None and path.is_file() else 0

    async def delete(self, ref: str) -> None:
        path = self._local(ref)
        if path is not None:
            path.unlink(missing_ok=True)


class S3RecordingStore(RecordingStore):
    """Recordings in an S3-compatible bucket (AWS S3, MinIO, Yandex Object Storage ...), through aioboto3.

    Local references (recordings kept before the switch to S3) are still read and deleted locally."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.data_dir)
        import aioboto3

        self.session = aioboto3.Session()
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.options: dict[str, Any] = {
            "endpoint_url": settings.s3_endpoint_url or None,
            "region_name": settings.s3_region or None,
            "aws_access_key_id": settings.s3_access_key or None,
            "aws_secret_access_key": settings.s3_secret_key or None,
        }

    def client(self) -> Any:
        return self.session.client("s3", **self.options)

    def key(self, file: Path) -> str:
        try:
            relative = file.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            relative = file.name
        return f"{self.prefix}{relative}"

    async def adopt(self, file: Path) -> tuple[str, int]:
        key = self.key(file)
        size = file.stat().st_size
        async with self.client() as s3:
            await s3.upload_file(str(file), self.bucket, key, ExtraArgs={"ContentType": media_type(key)})
        file.unlink(missing_ok=True)
        return S3_REF + key, size

    async def read(self, ref: str) -> bytes | None:
        if not ref.startswith(S3_REF):
            return await super().read(ref)
        async with self.client() as s3:
            try:
                answer = await s3.get_object(Bucket=self.bucket, Key=ref.removeprefix(S3_REF))
            except s3.exceptions.NoSuchKey:
                return None
            async with answer["Body"] as body:
                data: bytes = await body.read()
                return data

    async def size(self, ref: str) -> int:
        if not ref.startswith(S3_REF):
            return await super().size(ref)
        async with self.client() as s3:
            try:
                head = await s3.head_object(Bucket=self.bucket, Key=ref.removeprefix(S3_REF))
            except s3.exceptions.ClientError:
                return 0
            return int(head["ContentLength"])

    async def delete(self, ref: str) -> None:
        if not ref.startswith(S3_REF):
            await super().delete(ref)
            return
        async with self.client() as s3:  # deleting a missing key is not an error in S3
            await s3.delete_object(Bucket=self.bucket, Key=ref.removeprefix(S3_REF))


_stores: dict[int, RecordingStore] = {}


def recording_store(settings: Settings) -> RecordingStore:
    """The deployment's store (one per settings object: the S3 session is reused)."""
    store = _stores.get(id(settings))
    wanted = S3RecordingStore if settings.recording_storage == "s3" else RecordingStore
    # a store made for other settings (an id reused after the first settings were dropped) is not reused
    if store is None or not isinstance(store, wanted) or store.root != recordings_root(settings.data_dir):
        store = S3RecordingStore(settings) if wanted is S3RecordingStore else RecordingStore(settings.data_dir)
        _stores[id(settings)] = store
    return store


# --- the signed link -----------------------------------------------------------------------------


def _signature(secret: str, call_id: str, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"recording:{call_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def signed_link(settings: Settings, call_id: str, now: dt.datetime | None = None) -> str:
    """The link to a call's recording that works without signing in until it expires."""
    expires = int((now or dt.datetime.now(dt.UTC)).timestamp()) + settings.recording_link_hours * 3600
    signature = _signature(settings.secret_key, str(call_id), expires)
    return f"{settings.public_url}/recordings/{call_id}/{expires}/{signature}"


def check_link(settings: Settings, call_id: str, expires: str, signature: str, now: dt.datetime | None = None) -> int:
    """200 for a good unexpired link, 403 for a forged or altered one, 410 for an expired one."""
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return 403
    expected = _signature(settings.secret_key, call_id, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return 403
    if int(expires) <= (now or dt.datetime.now(dt.UTC)).timestamp():
        return 410
    return 200


# --- retention and quotas ------------------------------------------------------------------------


async def forget(store: RecordingStore, attempt_id: Any, call_id: Any, ref: str) -> None:
    """Delete one recording and clear it from its attempt and call, so nobody is offered it."""
    from perezvon.core.models import Attempt, Call

    await store.delete(ref)
    await Attempt.filter(id=attempt_id).update(recording="", recording_bytes=0)
    await Call.filter(id=call_id, recording=ref).update(recording="")


async def expire(store: RecordingStore, default_days: int, now: dt.datetime) -> int:
    """Delete recordings of attempts that ended longer ago than their connection's retention."""
    from perezvon.core.models import Attempt, Connection

    by_days: dict[int, list[int]] = {}
    for connection_id, days in await Connection.all().values_list("id", "recording_retention_days"):
        by_days.setdefault(default_days if days is None else days, []).append(connection_id)
    deleted = 0
    for days, ids in sorted(by_days.items()):
        if days <= 0:  # 0 keeps them forever
            continue
        old = (
            await Attempt.filter(call__connection_id__in=ids, ended_at__lt=now - dt.timedelta(days=days))
            .exclude(recording="")
            .limit(BATCH)
            .values_list("id", "call_id", "recording")
        )
        for attempt_id, call_id, ref in old:
            await forget(store, attempt_id, call_id, ref)
        if old:
            log.info("recordings: %d older than %d days deleted", len(old), days)
        deleted += len(old)
    return deleted


async def measure(store: RecordingStore) -> None:
    """Fill in the sizes of recordings kept before sizes were recorded (0 stays 0 when nothing is found)."""
    from perezvon.core.models import Attempt

    unknown = await Attempt.filter(recording_bytes=0).exclude(recording="").limit(BATCH).values_list("id", "recording")
    for attempt_id, ref in unknown:
        size = await store.size(ref)
        if size:
            await Attempt.filter(id=attempt_id).update(recording_bytes=size)


async def use_by_project() -> dict[int, int]:
    """The bytes of recordings each project holds (one grouped query; projects without any are absent)."""
    from tortoise.functions import Sum

    from perezvon.core.models import Attempt

    rows = (
        await Attempt.exclude(recording="")
        .annotate(total=Sum("recording_bytes"))
        .group_by("call__connection__project_id")
        .values_list("call__connection__project_id", "total")
    )
    return {int(project_id): int(total or 0) for project_id, total in rows}


def human_size(size: float) -> str:
    """1.50 GB, 320.0 MB, 12 KB: how the use and the quota are written (no words to translate)."""
    if size >= GB:
        return f"{size / GB:.2f} GB"
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MB"
    return f"{size / 1024:.0f} KB"


async def apply_quotas(app: Any, store: RecordingStore, now: dt.datetime) -> dict[str, int]:
    """Measure each project's use and act where it passes the quota; counts of what was done."""
    from perezvon.core.models import Attempt, Project

    done = {"deleted_for_quota": 0, "over_quota": 0, "told": 0}
    use = await use_by_project()
    for project in await Project.all().order_by("id"):
        used = use.get(project.id, 0)
        limit = int(project.recording_quota_gb * GB) if project.recording_quota_gb else None
        over_since = project.recordings_over_quota_since
        if limit is not None and used > limit and project.recording_policy == DELETE_OLDEST:
            oldest = (
                await Attempt.filter(call__connection__project_id=project.id)
                .exclude(recording="")
                .order_by("started_at", "id")
                .limit(BATCH)
                .values_list("id", "call_id", "recording", "recording_bytes")
            )
            for attempt_id, call_id, ref, size in oldest:
                if used <= limit:
                    break
                await forget(store, attempt_id, call_id, ref)
                used -= int(size)
                done["deleted_for_quota"] += 1
            log.info("project %s: recordings over the quota deleted, oldest first; %s used", project.id, used)
            over_since = None
        elif limit is not None and used > limit:  # KEEP: marked, and its full-access users told once
            over_since = over_since or now
            done["over_quota"] += 1
            if await tell_over_quota(app, project, used, limit):
                done["told"] += 1
        else:
            over_since = None
        changes: dict[str, Any] = {"recording_bytes": used, "recordings_over_quota_since": over_since}
        if over_since is None:
            changes["recording_quota_told"] = []  # the next time it is over quota is a new episode
        if any(getattr(project, name) != value for name, value in changes.items()):  # most runs change nothing
            await Project.filter(id=project.id).update(**changes)
    return done


async def tell_over_quota(app: Any, project: Any, used: int, limit: int) -> bool:
    """Tell the project's full-access users, through every notifier that has not told them yet."""
    from perezvon.core.models import AccessGrant, GrantLevel, User
    from perezvon.core.registry import Notification

    notifiers = app.host.registry.notifiers
    told = list(project.recording_quota_told or [])
    if set(notifiers) <= set(told):
        return False
    grants = await AccessGrant.filter(project_id=project.id, level=GrantLevel.FULL, user__is_active=True).values_list(
        "user_id"
    )
    users = await User.filter(id__in=[user_id for (user_id,) in grants]).exclude(email=None).values_list("email")
    recipients = tuple(sorted({str(e).strip() for (e,) in users if e and str(e).strip()}))
    if not recipients:
        return False
    from perezvon.core.models import Connection

    connection = await Connection.filter(project_id=project.id).order_by("id").first()
    from perezvon.core.callbacks import as_event_data

    notification = Notification(
        kind="problem",
        recipients=recipients,
        subject_id=str(connection.id) if connection else "",
        data={
            "connection": as_event_data(connection) if connection else None,
            "problem": {
                "code": "recording_quota",
                "details": {
                    "used": human_size(used),
                    "limit": human_size(limit),
                    "project": {"id": project.id, "name": project.name},
                    "policy": project.recording_policy,
                },
            },
            "url": f"{app.settings.public_url}/projects/{project.id}",
        },
    )
    for key, notifier in notifiers.items():
        if key in told:
            continue
        try:
            await notifier.send(notification)
        except Exception as exc:  # tried again at the next run; the others are not held up
            log.warning("project %s: over-quota notice via %s failed; trying again later: %s", project.id, key, exc)
            if getattr(exc, "retry", True):
                continue
        told.append(key)
    await type(project).filter(id=project.id).update(recording_quota_told=told)
    project.recording_quota_told = told
    log.info("project %s: over its recording quota; told %s", project.id, ", ".join(recipients))
    return True


async def enforce(app: Any, now: dt.datetime | None = None) -> dict[str, int]:
    """The periodic job's work: retention first, then the quotas (docs/recordings.md)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    store = recording_store(app.settings)
    expired = await expire(store, app.settings.recording_retention_days, now)
    await measure(store)
    return {"expired": expired, **await apply_quotas(app, store, now)}
