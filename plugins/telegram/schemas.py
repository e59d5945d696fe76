"""Deployment settings of the Telegram plugin (``[plugins.telegram]`` in plugins.toml)."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate

#: what BotFather gives: ``<bot id>:<secret>``
TOKEN_PATTERN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{20,100}$")


def bot_token(value: str) -> None:
    if value and not TOKEN_PATTERN.match(value):
        # the value itself is never repeated: it is a secret
        raise ValidationError("Not a bot token: BotFather gives one like 123456789:AAE… (digits, a colon, 35 letters).")


class TelegramSettings(Schema):
    token = fields.String(
        load_default="",
        validate=bot_token,
        metadata={"secret": True, "help": "the bot's token from @BotFather; empty: the plugin sends nothing"},
    )
    api_url = fields.Url(
        load_default="https://api.telegram.org",
        schemes={"http", "https"},
        require_tld=False,
        metadata={"help": "the Bot API's address; change it only for a local Bot API server or a test"},
    )
    poll_timeout = fields.Integer(
        load_default=25,
        validate=validate.Range(min=0, max=50),
        metadata={"help": "seconds one getUpdates long poll waits for a message"},
    )
    code_minutes = fields.Integer(
        load_default=15,
        validate=validate.Range(min=1, max=1440),
        metadata={"help": "minutes a linking code from the profile stays valid"},
    )
    messages_per_second = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=30.0),
        metadata={"help": "at most this many messages a second from one process (Telegram allows about 30)"},
    )
    chat_interval = fields.Float(
        load_default=1.0,
        validate=validate.Range(min=0.0, max=60.0),
        metadata={"help": "seconds between two messages to the same chat (Telegram allows about one a second)"},
    )
    max_retry_after = fields.Integer(
        load_default=60,
        validate=validate.Range(min=1, max=3600),
        metadata={
            "help": "a 429's retry_after up to this many seconds is waited out in the job; a longer one "
            "hands the message back to the core's retries"
        },
    )
