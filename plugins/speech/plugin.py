"""The speech plugin: announcements spoken by eSpeak NG. Hook implementations only."""

from perezvon.api import hookimpl
from perezvon.plugins.speech.engine import EspeakEngine
from perezvon.plugins.speech.schemas import SpeechSettings


@hookimpl
def perezvon_settings_schema():
    return SpeechSettings


@hookimpl
def perezvon_register_speech(registry, settings, core_settings):
    registry.add_speech(EspeakEngine.from_settings(settings, core_settings))
