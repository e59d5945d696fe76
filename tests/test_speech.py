"""The speech plugin: Russian reading of announcements, and real audio from eSpeak NG.

The engine tests run the real espeak-ng and sox. They are not skipped when the programs are
missing: they fail and say what to install (CI installs both in .ci/run).
"""

from __future__ import annotations

import array
import asyncio
import importlib.metadata
import os
import random
import re
import shutil
import stat
import time
import tomllib
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

import perezvon.plugins.speech.plugin as speech_plugin
from perezvon.core.plugins import PluginHost
from perezvon.core.registry import SpeechEngine
from perezvon.hookspecs import hookimpl
from perezvon.plugins.speech import russian
from perezvon.plugins.speech.engine import EspeakEngine, SpeechError
from perezvon.plugins.speech.russian import (
    group_words,
    normalize,
    phone_words,
    speakable_name,
    split_group,
    transliterate,
)
from perezvon.plugins.speech.schemas import SpeechSettings

ROOT = Path(__file__).resolve().parent.parent

PHONE_WORDS = "девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь"
#: ten words: at ~150 words a minute about four seconds
TEN_WORDS = "Заявка с сайта, клиент Иван Петров просит перезвонить ему сегодня"


# --- Russian reading: phone numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("+79161234567", f"плюс семь, {PHONE_WORDS}"),
        ("+7 916 123-45-67", f"плюс семь, {PHONE_WORDS}"),
        ("+7 (916) 123-45-67", f"плюс семь, {PHONE_WORDS}"),
        ("8 (916) 123-45-67", f"восемь, {PHONE_WORDS}"),
        ("89161234567", f"восемь, {PHONE_WORDS}"),
        ("8-916-123-45-67", f"восемь, {PHONE_WORDS}"),
        ("9161234567", PHONE_WORDS),
        ("+74950012300", "плюс семь, четыреста девяносто пять, ноль ноль один, двадцать три, ноль ноль"),
        ("8 800 555-35-35", "восемь, восемьсот, пятьсот пятьдесят пять, тридцать пять, тридцать пять"),
        (
            "+44 20 7946 0958",
            "плюс сорок четыре, двадцать, семьдесят девять, сорок шесть, ноль девять, пятьдесят восемь",
        ),
        ("+380441234567", "плюс триста восемьдесят, сорок четыре, сто двадцать три, сорок пять, шестьдесят семь"),
    ],
)
def test_phone_numbers_are_read_in_groups(raw, spoken):
    assert phone_words(raw) == spoken


@pytest.mark.parametrize("raw", ["12345", "+7", "abc", "8916123456789012", "+7 916 12x 45 67", "١٢٣٤٥٦٧٨٩٠"])
def test_what_is_not_a_phone_number_is_refused(raw):
    with pytest.raises(ValueError):
        phone_words(raw)


@pytest.mark.parametrize(
    "digits, spoken",
    [
        ("0", "ноль"),
        ("00", "ноль ноль"),
        ("05", "ноль пять"),
        ("050", "ноль пятьдесят"),
        ("7", "семь"),
        ("12", "двенадцать"),
        ("45", "сорок пять"),
        ("100", "сто"),
        ("916", "девятьсот шестнадцать"),
        ("999", "девятьсот девяносто девять"),
    ],
)
def test_a_group_is_read_with_its_leading_zeros(digits, spoken):
    assert group_words(digits) == spoken


def test_long_groups_are_split_as_they_are_said():
    assert split_group("123") == ["123"]
    assert split_group("0958") == ["09", "58"]
    assert split_group("12345") == ["123", "45"]
    assert split_group("1234567") == ["123", "45", "67"]


def test_phones_inside_an_announcement_are_spoken_and_other_numbers_are_left_to_the_voice():
    assert normalize("Телефон клиента +79161234567.") == f"Телефон клиента плюс семь, {PHONE_WORDS}."
    assert normalize("Звонить на 8 (916) 123-45-67, после обеда") == (f"Звонить на восемь, {PHONE_WORDS}, после обеда")
    # an order number, a date and a sum are not phones: espeak-ng reads them as numbers
    assert normalize("Заказ 12345 от 12.05.2024 на 1500 рублей") == "Заказ 12345 от 12.05.2024 на 1500 рублей"


# --- Russian reading: names and cleaning --------------------------------------------------------


@pytest.mark.parametrize(
    "latin, cyrillic",
    [
        ("John", "Джон"),
        ("Smith", "Смит"),
        ("Ivan", "Иван"),
        ("Sergey", "Сергей"),
        ("Dmitriy", "Дмитрий"),
        ("Zhenya", "Женя"),
        ("Yaroslav", "Ярослав"),
        ("Kseniya", "Ксения"),
        ("Anastasia", "Анастасия"),
        ("Sarah", "Сара"),
        ("Mary", "Мари"),
        ("Schmidt", "Шмидт"),
        ("Müller", "Муллер"),
        ("Perezvon", "Перезвон"),
        ("Alexander", "Александер"),
        ("peter", "петер"),
    ],
)
def test_latin_names_are_transliterated(latin, cyrillic):
    assert transliterate(latin) == cyrillic


def test_latin_words_in_an_announcement_become_cyrillic():
    assert normalize("Клиент John Smith с сайта Perezvon") == "Клиент Джон Смит с сайта Перезвон"
    assert normalize("O'Brien") == "Обриен"
    assert normalize("Иванov") == "Иванов"  # a name typed with a mixed keyboard layout


@pytest.mark.parametrize(
    "hostile",
    [
        '"; rm -rf /',
        "$(reboot) `id` | tee /etc/passwd && echo",
        "<speak><audio src='file:///etc/passwd'/></speak>",
        "--help -w /tmp/x.wav",
        "Иван\n\r\x00\x07\x1b[31m",
        "Иван'); DROP TABLE leads;--",
    ],
)
def test_hostile_input_reads_harmlessly(hostile):
    spoken = normalize(hostile)
    assert not re.search(r"[\"'`$|&<>/\\(){}\[\]=\x00-\x1f]", spoken), spoken
    assert not spoken.startswith("-")
    assert spoken == " ".join(spoken.split())


def test_the_rm_rf_injection_is_just_two_syllables():
    assert normalize('"; rm -rf /') == "рм рф"


def test_whitespace_punctuation_and_symbols_are_tidied():
    assert normalize("  много    пробелов\n\tи  символов!!!  ") == "много пробелов и символов!"
    assert normalize("Анна-Мария — менеджер , отдел продаж") == "Анна-Мария, менеджер, отдел продаж"
    assert normalize("Заказ №5 & сервис") == "Заказ номер 5 и сервис"
    assert normalize("😀 Пётр 中文 😀") == "Пётр"
    assert normalize("…") == ""


def test_length_is_limited_at_a_word_boundary():
    long_text = "слово " * 400
    spoken = normalize(long_text)
    assert len(spoken) <= russian.MAX_CHARS and spoken.endswith("слово")
    assert normalize(long_text, max_chars=20) == "слово слово слово"
    name = speakable_name("Иван " * 50)
    assert len(name) <= russian.MAX_NAME_CHARS and name.endswith("Иван")
    assert speakable_name("John Smith.") == "Джон Смит"


def test_random_text_only_ever_yields_speakable_characters():
    rng = random.Random(20240501)
    alphabet = (
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГЯ"
        + "abcdefxyzABCXYZéüß"
        + "0123456789"
        + " \t\n.,!?:;-–—\"'`$|&<>/\\(){}[]=+*#@%^~№€😀中\x00\x07\u200b\u202e"
    )
    allowed = re.compile(r"^[А-Яа-яЁё0-9 .,!?:;-]*$")
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        spoken = normalize(text, max_chars=60)
        assert allowed.match(spoken), (text, spoken)
        assert len(spoken) <= 60 and spoken == spoken.strip()


# --- the engine: real audio -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def speech_programs():
    """espeak-ng and sox must be installed: a failure, never a skip."""
    missing = [name for name in ("espeak-ng", "sox") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found on PATH: install espeak-ng and sox "
            "(apt-get install espeak-ng sox; .ci/run does this in CI)",
            pytrace=False,
        )


@pytest.fixture
def engine(tmp_path, speech_programs):
    return EspeakEngine(tmp_path / "cache")


def read_wav(path: Path) -> tuple[wave._wave_params, array.array]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    return params, samples


def duration(path: Path) -> float:
    params, _ = read_wav(path)
    return params.nframes / params.framerate


def rms(samples: array.array) -> float:
    return (sum(s * s for s in samples) / max(len(samples), 1)) ** 0.5


def median_pitch(samples: array.array, rate: int = 8000) -> float:
    """A crude voice pitch (Hz): the median autocorrelation peak over loud 30 ms frames."""
    size, found = rate * 30 // 1000, []
    for start in range(0, len(samples) - size - 100, size):
        frame = samples[start : start + size]
        energy = sum(s * s for s in frame)
        if energy < size * 1000**2:
            continue
        best, best_lag = 0, 0
        for lag in range(rate // 500, rate // 70):  # 70-500 Hz
            c = sum(frame[i] * samples[start + i + lag] for i in range(size))
            if c > best:
                best, best_lag = c, lag
        if best > 0.5 * energy:
            found.append(rate / best_lag)
    assert len(found) > 10, "too few voiced frames to measure the pitch"
    return sorted(found)[len(found) // 2]


def count_runs(monkeypatch) -> list[list[str]]:
    """Record every program the engine starts (and still start it)."""
    runs: list[list[str]] = []
    real = asyncio.create_subprocess_exec

    async def recording(program, *args, **kwargs):
        runs.append([program, *args])
        return await real(program, *args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    return runs


def syntheses(runs: list[list[str]]) -> int:
    return sum(1 for run in runs if "-w" in run)


async def test_a_sentence_becomes_8_khz_mono_16_bit_speech_of_plausible_length(engine):
    path = await engine.synthesize(TEN_WORDS, "female")
    assert path.parent == engine.cache_dir and path.suffix == ".wav" and re.fullmatch(r"[0-9a-f]{64}", path.stem)
    params, samples = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.comptype) == (1, 2, 8000, "NONE")
    assert 2.0 <= params.nframes / params.framerate <= 8.0, f"{params.nframes / params.framerate:.2f} s for ten words"
    assert rms(samples) > 500, "the file is (nearly) silent"
    silent = sum(1 for s in samples if abs(s) < 100) / len(samples)
    assert silent < 0.8, f"{silent:.0%} of the file is silence"
    assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[20:22] == b"\x01\x00"  # plain PCM


async def test_a_longer_text_gives_a_longer_file(engine):
    short = duration(await engine.synthesize("Здравствуйте", "male"))
    ten = duration(await engine.synthesize(TEN_WORDS, "male"))
    thirty = duration(await engine.synthesize(f"{TEN_WORDS}. {TEN_WORDS}. {TEN_WORDS}.", "male"))
    assert 0.3 < short < 2.5
    assert short < ten < thirty and thirty > 2.3 * ten


async def test_a_phone_number_is_spoken_in_words(engine):
    # ~19 words with the number read in groups; as one huge number it would be much shorter
    seconds = duration(await engine.synthesize("Телефон клиента +79161234567", "female"))
    assert 4.0 <= seconds <= 12.0


async def test_male_and_female_voices_differ_and_female_is_higher(engine):
    male = await engine.synthesize(TEN_WORDS, "male")
    female = await engine.synthesize(TEN_WORDS, "female")
    assert male != female and male.read_bytes() != female.read_bytes()
    male_pitch, female_pitch = median_pitch(read_wav(male)[1]), median_pitch(read_wav(female)[1])
    assert female_pitch > 1.4 * male_pitch, (male_pitch, female_pitch)


async def test_16_khz_files_are_wav16_for_asterisk(tmp_path, speech_programs):
    engine = EspeakEngine(tmp_path, sample_rate=16000)
    path = await engine.synthesize("Проверка связи", "male")
    params, _ = read_wav(path)
    assert path.suffix == ".wav16" and (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)


# --- the engine: cache and concurrency ---------------------------------------------------------


async def test_the_cache_returns_the_same_file_without_running_the_engine_again(engine, monkeypatch):
    runs = count_runs(monkeypatch)
    first = await engine.synthesize(TEN_WORDS, "female")
    inode, content = first.stat().st_ino, first.read_bytes()
    assert syntheses(runs) == 1
    again = await engine.synthesize(TEN_WORDS, "female")
    # the same text after cleaning is the same announcement
    spaced = await engine.synthesize(f"  {TEN_WORDS.replace(' ', '   ')}  ", "female")
    assert again == spaced == first and first.stat().st_ino == inode and first.read_bytes() == content
    assert syntheses(runs) == 1 and (engine.syntheses, engine.hits) == (1, 2)
    assert len(runs) == 3  # --version once, espeak-ng once, sox once

    # a new engine (another worker, after a restart) finds the file too
    other = EspeakEngine(engine.cache_dir)
    assert await other.synthesize(TEN_WORDS, "female") == first and other.syntheses == 0
    assert syntheses(runs) == 1


async def test_voice_speed_and_text_are_part_of_the_cache_key(engine, tmp_path):
    base = await engine.synthesize(TEN_WORDS, "male")
    assert await engine.synthesize(TEN_WORDS + "!", "male") != base
    assert await engine.synthesize(TEN_WORDS, "female") != base
    faster = EspeakEngine(engine.cache_dir, speed=220)
    quick = await faster.synthesize(TEN_WORDS, "male")
    assert quick != base and duration(quick) < duration(base)
    assert engine.syntheses == 3 and faster.syntheses == 1


async def test_concurrent_requests_for_the_same_text_run_the_engine_once(engine, monkeypatch):
    runs = count_runs(monkeypatch)
    paths = await asyncio.gather(*(engine.synthesize(TEN_WORDS, "male") for _ in range(8)))
    assert len(set(paths)) == 1 and syntheses(runs) == 1 and engine.syntheses == 1
    texts = [f"Клиент номер {n}" for n in range(4)]
    paths = await asyncio.gather(*(engine.synthesize(t, "female") for t in texts for _ in range(3)))
    assert len(set(paths)) == 4 and syntheses(runs) == 5
    assert len(list(engine.cache_dir.iterdir())) == 5


async def test_one_caller_giving_up_does_not_cancel_the_others(engine):
    await engine.engine_version()
    quitter = asyncio.create_task(engine.synthesize(TEN_WORDS, "female"))
    stayer = asyncio.create_task(engine.synthesize(TEN_WORDS, "female"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    quitter.cancel()
    path = await stayer
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert duration(path) > 2 and engine.syntheses == 1


async def test_files_appear_whole_and_no_temporary_files_are_left(engine):
    await asyncio.gather(*(engine.synthesize(f"Фраза {n}", "male") for n in range(5)))
    names = [p.name for p in engine.cache_dir.iterdir()]
    assert len(names) == 5 and all(re.fullmatch(r"[0-9a-f]{64}\.wav", n) for n in names), names


def test_the_sweep_deletes_unused_files_and_crash_leftovers(tmp_path):
    engine = EspeakEngine(tmp_path, cache_days=30)
    now = time.time()
    for name, age_days in [
        ("a" * 64 + ".wav", 31),
        ("b" * 64 + ".wav", 29),
        (".leftover.part", 1),
        ("c" * 64 + ".wav16", 40),
        ("notes.txt", 400),
    ]:
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    assert engine.prune_cache(now) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b" * 64 + ".wav", "notes.txt"]
    assert EspeakEngine(tmp_path, cache_days=0).prune_cache(now + 10**9) == 0
    assert EspeakEngine(tmp_path / "absent").prune_cache() == 0


# --- the engine: errors ------------------------------------------------------------------------------


async def test_a_missing_engine_binary_is_a_clear_error_naming_it(tmp_path):
    engine = EspeakEngine(tmp_path, espeak_binary="espeak-ng-not-installed")
    with pytest.raises(SpeechError, match=r"'espeak-ng-not-installed' not found: install espeak-ng") as caught:
        await engine.synthesize(TEN_WORDS, "male")
    assert caught.value.program == "espeak-ng-not-installed"


async def test_a_missing_sox_is_a_clear_error_naming_it(tmp_path, speech_programs):
    engine = EspeakEngine(tmp_path, sox_binary=str(tmp_path / "no-sox-here"))
    with pytest.raises(SpeechError, match=r"no-sox-here' not found: install sox"):
        await engine.synthesize(TEN_WORDS, "male")
    assert [p.name for p in tmp_path.iterdir()] == []  # espeak-ng's temporary file is gone too


async def test_an_engine_failure_carries_its_stderr(tmp_path, speech_programs):
    engine = EspeakEngine(tmp_path, voices={"male": "xx-nosuch", "female": "ru+f3"})
    with pytest.raises(SpeechError, match=r"espeak-ng failed with exit status 1: .*voice does not exist") as caught:
        await engine.synthesize(TEN_WORDS, "male")
    assert caught.value.returncode == 1 and "voice" in caught.value.stderr
    assert list(tmp_path.iterdir()) == []
    assert (await engine.synthesize(TEN_WORDS, "female")).exists()  # the other voice still works


async def test_a_hanging_engine_is_stopped_after_the_timeout(tmp_path):
    fake = tmp_path / "espeak-hangs"
    fake.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "fake 1.0"; exit 0; fi\nexec sleep 30\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    engine = EspeakEngine(tmp_path / "cache", espeak_binary=str(fake), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SpeechError, match=r"did not finish within 0.5 s"):
        await engine.synthesize(TEN_WORDS, "male")
    assert time.monotonic() - started < 5


async def test_empty_text_and_unknown_voices_are_refused(engine):
    with pytest.raises(SpeechError, match="nothing to say"):
        await engine.synthesize(" \n «» 😀 ", "male")
    with pytest.raises(ValueError, match="'male' or 'female'"):
        await engine.synthesize(TEN_WORDS, "robot")


async def test_visitor_text_never_reaches_a_shell(engine, tmp_path):
    marker = tmp_path / "pwned"
    text = f'Иван"; touch {marker}; $(touch {marker}) `touch {marker}` -w {marker} --help'
    path = await engine.synthesize(text, "male")
    assert not marker.exists() and duration(path) > 1


# --- the plugin -----------------------------------------------------------------------------------


def test_settings_defaults_and_checks():
    settings = SpeechSettings().load({})
    assert settings == {
        "cache_dir": "",
        "cache_days": 30,
        "speed": 150,
        "pitch": 50,
        "sample_rate": 8000,
        "male_voice": "ru",
        "female_voice": "ru+f3",
        "max_chars": 1000,
        "timeout": 30.0,
        "espeak_binary": "espeak-ng",
        "sox_binary": "sox",
    }
    for bad in (
        {"male_voice": "-w /tmp/x"},
        {"female_voice": "ru; rm"},
        {"sample_rate": 44100},
        {"speed": 10},
        {"pitch": 100},
        {"espeak_binary": "--help"},
        {"loud": True},
    ):
        with pytest.raises(ValidationError):
            SpeechSettings().load(bad)


def host_with_speech(tmp_path, section: str = "") -> PluginHost:
    core_settings = SimpleNamespace(data_dir=tmp_path / "data")
    host = PluginHost(tomllib.loads(f"[plugins.speech]\nenabled = true\n{section}"), core_settings)
    host.register("speech", speech_plugin)
    return host


def test_the_plugin_registers_the_engine_with_its_settings(tmp_path):
    host = host_with_speech(tmp_path, 'speed = 170\nfemale_voice = "ru+f4"\n')
    host.configure()
    engine = host.registry.speech["espeak"]
    assert isinstance(engine, EspeakEngine) and engine.priority == 0
    assert engine.cache_dir == tmp_path / "data" / "speech-cache"
    assert (engine.speed, engine.voices) == (170, {"male": "ru", "female": "ru+f4"})
    assert host.infos["speech"].kinds == ["speech engine"]
    assert not (tmp_path / "data").exists()  # registering touches no files


def test_cache_dir_may_be_relative_to_the_data_dir_or_absolute(tmp_path):
    host = host_with_speech(tmp_path, 'cache_dir = "tts"\n')
    host.configure()
    assert host.registry.speech["espeak"].cache_dir == tmp_path / "data" / "tts"
    host = host_with_speech(tmp_path, f'cache_dir = "{tmp_path / "elsewhere"}"\n')
    host.configure()
    assert host.registry.speech["espeak"].cache_dir == tmp_path / "elsewhere"


def test_a_better_engine_with_a_higher_priority_wins(tmp_path):
    class Better(SpeechEngine):
        key, title, priority = "better", "A better voice", 10

        async def synthesize(self, text, voice):  # pragma: no cover - not called
            raise NotImplementedError

    class BetterPlugin:
        @hookimpl
        def perezvon_register_speech(self, registry):
            registry.add_speech(Better())

    host = host_with_speech(tmp_path)
    host.register("better", BetterPlugin())
    host.configure()
    chosen = max(host.registry.speech.values(), key=lambda e: e.priority)
    assert set(host.registry.speech) == {"espeak", "better"} and chosen.key == "better"


def test_bad_settings_stop_start_up_naming_the_field(tmp_path):
    host = host_with_speech(tmp_path, "sample_rate = 44100\n")
    with pytest.raises(Exception, match=r"plugin 'speech': setting 'sample_rate' in plugins.toml"):
        host.configure()


@pytest.mark.parametrize("toml", ["plugins.toml", "tests/plugins.toml"])
def test_the_plugins_files_enable_it_with_valid_settings(toml):
    section = tomllib.loads((ROOT / toml).read_text())["plugins"]["speech"]
    assert section.pop("enabled") is True, (
        f"set enabled = true in [plugins.speech] of {toml} (with the entry point in pyproject.toml)"
    )
    SpeechSettings().load(section)


def test_it_is_installed_as_the_built_in_plugin_speech():
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="perezvon")}
    assert "speech" in found, (
        'add speech = "perezvon.plugins.speech.plugin" under [project.entry-points.perezvon] '
        "in pyproject.toml and reinstall (pip install -e .)"
    )
    assert found["speech"].value == "perezvon.plugins.speech.plugin"
