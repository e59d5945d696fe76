"""What the Telegram plugin stores (Tortoise app ``telegram``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TelegramLink(Model):
    """A user's Telegram chat, keyed by the user, and while linking, the one-time code of its deep link."""

    user_id = fields.IntField(primary_key=True, generated=False, description="perezvon.User.id")
    chat_id = fields.BigIntField(null=True, description="the private chat with the bot, null until linked")
    chat_name = fields.CharField(max_length=200, default="", description="the Telegram name, shown in the profile")
    language = fields.CharField(max_length=5, default="ru", description="the admin's language when linked")
    code = fields.CharField(
        max_length=64, null=True, unique=True, description="the pending one-time code (shown in the profile only)"
    )
    code_expires_at = fields.DatetimeField(null=True)
    linked_at = fields.DatetimeField(null=True)
    blocked_at = fields.DatetimeField(null=True, description="the user blocked the bot: nothing is sent")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "telegram_links"


class TelegramSent(Model):
    """One message delivered to one chat: a retried job does not send it twice."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=255, unique=True, description="<kind>:<subject id>:<chat id>[:masked]")
    message_id = fields.BigIntField(null=True)
    sent_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "telegram_sent"


class TelegramState(Model):
    """The poller's place in the update stream (getUpdates ``offset``), one row."""

    id = fields.IntField(primary_key=True)
    next_update_id = fields.BigIntField(default=0)

    class Meta:
        table = "telegram_state"
