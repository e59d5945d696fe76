"""The built-in speech engine: eSpeak NG with a Russian voice, resampled by sox for telephony.

``await engine.synthesize(text, voice)`` returns a WAV file Asterisk plays as it is: mono,
16-bit signed linear, 8000 Hz (``.wav``; or 16000 Hz as ``.wav16``). The text is first made
speakable (:func:`perezvon.plugins.speech.russian.normalize`), then looked up in a cache keyed by the
engine version, the voice, speed, pitch, sample rate and that text. A miss runs::

    espeak-ng -v <voice> -s <speed> -p <pitch> -b 1 -w <tmp.wav> --stdin   (the text on stdin)
    sox <tmp.wav> -t wav -r <rate> -c 1 -b 16 -e signed-integer <tmp>
    rename <tmp> -> <cache_dir>/<sha256>.wav

Programs are started with :func:`asyncio.create_subprocess_exec` -- never a shell -- and the
text only ever travels on standard input. Concurrent requests for the same text share one run;
files appear in the cache only whole (written under a temporary name, then renamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import time
import uuid
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perezvon.api import SpeechEngine
from perezvon.plugins.speech import russian

if TYPE_CHECKING:
    from perezvon.api import Settings

log = logging.getLogger("perezvon.speech")

#: used when the plugin is loaded without core settings (a bare PluginHost in a test)
FALLBACK_DATA_DIR = Path("var")
#: bump when the way files are produced changes, so old cache entries are not reused
CACHE_FORMAT = 1
#: the Debian package that provides each program, for the error message
PACKAGES = {"espeak": "espeak-ng", "sox": "sox"}
#: how often the cache is swept for files unused for ``cache_days``
PRUNE_EVERY_SECONDS = 3600.0
#: temporary files older than this are leftovers of a crash
STALE_TEMP_SECONDS = 3600.0
VOICES = ("male", "female")


class SpeechError(Exception):
    """The announcement could not be spoken. The message says why, with the program's stderr."""

    def __init__(self, message: str, *, program: str = "", returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.program = program
        self.returncode = returncode
        self.stderr = stderr


def cache_dir_path(settings: Mapping[str, Any], core_settings: Settings | None) -> Path:
    """``cache_dir`` from the settings: empty -> <data dir>/speech-cache, relative -> under the data dir."""
    data_dir = Path(core_settings.data_dir) if core_settings else FALLBACK_DATA_DIR.resolve()
    configured = Path(settings.get("cache_dir") or "speech-cache")
    return configured if configured.is_absolute() else data_dir / configured


class EspeakEngine(SpeechEngine):
    key = "espeak"
    title = "eSpeak NG (Russian)"
    #: the lowest: any other engine a plugin registers with a higher priority is used instead
    priority = 0

    def __init__(
        self,
        cache_dir: Path,
        *,
        voices: Mapping[str, str] | None = None,
        speed: int = 150,
        pitch: int = 50,
        sample_rate: int = 8000,
        max_chars: int = russian.MAX_CHARS,
        timeout: float = 30.0,
        cache_days: int = 30,
        espeak_binary: str = "espeak-ng",
        sox_binary: str = "sox",
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.voices = dict(voices or {"male": "ru", "female": "ru+f3"})
        self.speed = speed
        self.pitch = pitch
        self.sample_rate = sample_rate
        self.max_chars = max_chars
        self.timeout = timeout
        self.cache_days = cache_days
        self.programs = {"espeak": espeak_binary, "sox": sox_binary}
        #: Asterisk picks the format by the extension: .wav is 8 kHz, .wav16 is 16 kHz
        self.suffix = ".wav16" if sample_rate == 16000 else ".wav"
        #: how many times espeak-ng synthesised / the cache answered (for tests and logs)
        self.syntheses = 0
        self.hits = 0
        self._version: str | None = None
        self._inflight: dict[str, asyncio.Task[Path]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._last_prune = float("-inf")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], core_settings: Settings | None) -> EspeakEngine:
        return cls(
            cache_dir_path(settings, core_settings),
            voices={"male": settings["male_voice"], "female": settings["female_voice"]},
            speed=settings["speed"],
            pitch=settings["pitch"],
            sample_rate=settings["sample_rate"],
            max_chars=settings["max_chars"],
            timeout=settings["timeout"],
            cache_days=settings["cache_days"],
            espeak_binary=settings["espeak_binary"],
            sox_binary=settings["sox_binary"],
        )

    # --- the interface ---------------------------------------------------------------------

    def speakable(self, text: str) -> str:
        """The text exactly as it will be spoken (phones in words, Latin names in Cyrillic)."""
        return russian.normalize(text, self.max_chars)

    async def synthesize(self, text: str, voice: str) -> Path:
        """The announcement as a WAV file in the cache (made now, or found there)."""
        if voice not in VOICES:
            raise ValueError(f"voice must be 'male' or 'female', not {voice!r}")
        spoken = self.speakable(text)
        if not spoken:
            raise SpeechError("nothing to say: the announcement is empty once cleaned for speech")
        key = self.cache_key(spoken, voice, await self.engine_version())
        path = self.cache_dir / f"{key}{self.suffix}"
        if path.exists():
            self.hits += 1
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: kept by the sweep
            return path
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._produce(path, spoken, self.voices[voice]))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # shielded: one caller giving up (a hung-up call) does not cancel the others' synthesis
        return await asyncio.shield(task)

    def cache_key(self, spoken: str, voice: str, version: str) -> str:
        material = {
            "format": CACHE_FORMAT,
            "engine": version,
            "voice": self.voices[voice],
            "speed": self.speed,
            "pitch": self.pitch,
            "rate": self.sample_rate,
            "text": spoken,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    async def engine_version(self) -> str:
        """``espeak-ng --version``'s first line, asked once (part of the cache key)."""
        if self._version is None:
            out, _ = await self._run("espeak", ["--version"])
            lines = out.decode("utf-8", "replace").strip().splitlines()
            self._version = lines[0].strip() if lines else "unknown"
        return self._version

    # --- making a file ---------------------------------------------------------------------

    def _forget(self, key: str, task: asyncio.Task[Path]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" if every caller left

    async def _produce(self, path: Path, spoken: str, voice_name: str) -> Path:
        if path.exists():  # another worker process made it meanwhile
            return path
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        stem = f".{path.stem[:16]}-{uuid.uuid4().hex}"  # hidden: never taken for a cache entry
        raw = self.cache_dir / f"{stem}.espeak.wav"
        out = self.cache_dir / f"{stem}.part"
        try:
            await self._run(
                "espeak",
                ["-v", voice_name, "-s", str(self.speed), "-p", str(self.pitch), "-b", "1", "-w", str(raw), "--stdin"],
                stdin=spoken.encode("utf-8"),
            )
            self.syntheses += 1
            if not raw.exists() or raw.stat().st_size <= 44:
                raise SpeechError(
                    f"{self.programs['espeak']} wrote no audio for {spoken[:60]!r}", program=self.programs["espeak"]
                )
            await self._run(
                "sox",
                [
                    "-V1",
                    "-D",
                    str(raw),
                    "-t",
                    "wav",
                    "-r",
                    str(self.sample_rate),
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                    str(out),
                ],
            )
            self._check(out)
            os.replace(out, path)  # atomic: readers see no file or the whole file
        finally:
            raw.unlink(missing_ok=True)
            out.unlink(missing_ok=True)
        log.debug("spoke %d characters into %s", len(spoken), path)
        self._maybe_prune()
        return path

    def _check(self, path: Path) -> None:
        """The file is what Asterisk plays: mono, 16-bit, at our rate, and not empty."""
        try:
            with wave.open(str(path), "rb") as wav:
                shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
                frames = wav.getnframes()
        except (wave.Error, EOFError, OSError) as exc:
            raise SpeechError(
                f"{self.programs['sox']} wrote an unreadable WAV file: {exc}", program=self.programs["sox"]
            ) from exc
        if shape != (1, 2, self.sample_rate) or frames == 0:
            raise SpeechError(
                f"{self.programs['sox']} wrote {shape[0]} channel(s), {8 * shape[1]}-bit, "
                f"{shape[2]} Hz, {frames} frames; expected mono 16-bit {self.sample_rate} Hz audio",
                program=self.programs["sox"],
            )

    async def _run(self, role: str, args: list[str], stdin: bytes | None = None) -> tuple[bytes, bytes]:
        """Run espeak-ng or sox (no shell), with the timeout; a clear SpeechError otherwise."""
        program = self.programs[role]
        try:
            process = await asyncio.create_subprocess_exec(
                program,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise SpeechError(
                f"speech program {program!r} not found: install {PACKAGES[role]} "
                f"(Debian: apt-get install espeak-ng sox) or set {role}_binary "
                f"in [plugins.speech]",
                program=program,
            ) from None
        except PermissionError as exc:
            raise SpeechError(f"speech program {program!r} cannot be run: {exc}", program=program) from None
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), self.timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise SpeechError(
                f"{program} did not finish within {self.timeout:g} s and was stopped", program=program
            ) from None
        if process.returncode != 0:
            message = " ".join(err.decode("utf-8", "replace").split())[:500]
            raise SpeechError(
                f"{program} failed with exit status {process.returncode}: {message or 'no message'}",
                program=program,
                returncode=process.returncode,
                stderr=message,
            )
        return out, err

    # --- the cache sweep ---------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        if not self.cache_days or time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.prune_cache))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def prune_cache(self, now: float | None = None) -> int:
        """Delete files unused for ``cache_days`` and temporary leftovers; return how many."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(self.cache_dir.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                age = now - entry.stat().st_mtime
                if entry.name.startswith("."):
                    expired = age > STALE_TEMP_SECONDS
                else:
                    expired = (
                        bool(self.cache_days) and entry.suffix in (".wav", ".wav16") and age > self.cache_days * 86400
                    )
                if expired and entry.is_file():
                    entry.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to delete
        return removed
