"""Deployment settings of the speech plugin (``[plugins.speech]`` in plugins.toml)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

#: an eSpeak NG voice name with an optional variant: "ru", "ru+f3", "ru-lv+m3"; never an option
VOICE_NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_+\-]{0,39}$", error="An eSpeak NG voice such as 'ru' or 'ru+f3'.")
#: an executable name or path; never an option
BINARY = validate.Regexp(r"^[^-\s][^\s]*$", error="A program name or path, without spaces.")
#: Asterisk plays 8 kHz from .wav and 16 kHz from .wav16 (16-bit signed linear, mono)
SAMPLE_RATES = (8000, 16000)


class SpeechSettings(Schema):
    cache_dir = fields.String(
        load_default="",
        metadata={
            "help": "where spoken announcements are kept; empty: <data dir>/speech-cache, relative: under the data dir"
        },
    )
    cache_days = fields.Integer(
        load_default=30,
        validate=validate.Range(min=0, max=3650),
        metadata={"help": "files not used for this many days are deleted; 0 keeps them forever"},
    )
    speed = fields.Integer(
        load_default=150, validate=validate.Range(min=80, max=450), metadata={"help": "words per minute (espeak-ng -s)"}
    )
    pitch = fields.Integer(
        load_default=50, validate=validate.Range(min=0, max=99), metadata={"help": "0-99 (espeak-ng -p)"}
    )
    sample_rate = fields.Integer(
        load_default=8000,
        validate=validate.OneOf(SAMPLE_RATES),
        metadata={"help": "8000 (.wav, what Asterisk plays by default) or 16000 (.wav16); 16-bit mono either way"},
    )
    male_voice = fields.String(
        load_default="ru", validate=VOICE_NAME, metadata={"help": "the eSpeak NG voice for voice = male"}
    )
    female_voice = fields.String(
        load_default="ru+f3", validate=VOICE_NAME, metadata={"help": "the eSpeak NG voice for voice = female"}
    )
    max_chars = fields.Integer(
        load_default=1000,
        validate=validate.Range(min=50, max=5000),
        metadata={"help": "longer announcements are cut at a word boundary"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=1, max=600),
        metadata={"help": "seconds each of espeak-ng and sox may run"},
    )
    espeak_binary = fields.String(
        load_default="espeak-ng", validate=BINARY, metadata={"help": "the espeak-ng program (a name on PATH or a path)"}
    )
    sox_binary = fields.String(
        load_default="sox", validate=BINARY, metadata={"help": "the sox program (a name on PATH or a path)"}
    )
