"""The platform's recording storage: files move in from the PBX and leave after the retention."""

import datetime as dt
import wave

from perezvon.core.models import Attempt, Call
from perezvon.core.recordings import RecordingStore, expire, keep_recording, recordings_root


def write_wav(path, seconds=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * seconds))


async def test_a_recording_moves_into_the_storage_by_day(tmp_path):
    source = tmp_path / "pbx" / "leg.wav"
    write_wav(source)
    kept = await keep_recording(source, tmp_path, "call-1", 2, now=dt.datetime(2026, 11, 22, tzinfo=dt.UTC))
    assert kept == recordings_root(tmp_path) / "2026/11/22/call-1-2.wav"
    assert kept.is_file() and not source.exists()


async def test_a_recording_that_never_appears_is_none(tmp_path):
    assert await keep_recording(tmp_path / "missing.wav", tmp_path, "call-1", 1, settle_seconds=0.3) is None


async def test_recordings_past_the_retention_are_deleted_and_forgotten(
    perezvon_client, perezvon_site, perezvon_app, perezvon_run_jobs, new_phone
):
    response = await perezvon_client.post(
        "/api/v1/leads", json={"token": perezvon_site.token, "phone": new_phone(), "consent": True}
    )
    await perezvon_run_jobs()
    call = await Call.get(id=response.json()["call_id"])
    attempt = await Attempt.get(call_id=call.id)
    data_dir = perezvon_app.settings.data_dir
    old, fresh = recordings_root(data_dir) / "old.wav", recordings_root(data_dir) / "fresh.wav"
    write_wav(old)
    write_wav(fresh)
    now = dt.datetime.now(dt.UTC)
    attempt.recording, attempt.ended_at = str(old), now - dt.timedelta(days=93)
    await attempt.save()
    await Call.filter(id=call.id).update(recording=str(old))
    other = await Attempt.create(
        call_id=call.id,
        number=2,
        direction="operator_first",
        backend="simulator",
        started_at=now,
        ended_at=now - dt.timedelta(days=10),
        recording=str(fresh),
    )

    assert await expire(RecordingStore(data_dir), 92, now) >= 1
    assert not old.exists() and fresh.exists()
    assert (await Attempt.get(id=attempt.id)).recording == ""
    assert (await Call.get(id=call.id)).recording == ""
    assert (await Attempt.get(id=other.id)).recording == str(fresh)
    assert await expire(RecordingStore(data_dir), 0, now) == 0  # 0 keeps everything
