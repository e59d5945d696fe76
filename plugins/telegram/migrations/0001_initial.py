from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="TelegramLink",
            fields=[
                (
                    "user_id",
                    fields.IntField(
                        primary_key=True, generated=False, unique=True, db_index=True, description="perezvon.User.id"
                    ),
                ),
                (
                    "chat_id",
                    fields.BigIntField(null=True, description="the private chat with the bot, null until linked"),
                ),
                (
                    "chat_name",
                    fields.CharField(default="", description="the Telegram name, shown in the profile", max_length=200),
                ),
                (
                    "language",
                    fields.CharField(default="ru", description="the admin's language when linked", max_length=5),
                ),
                (
                    "code",
                    fields.CharField(
                        null=True,
                        unique=True,
                        description="the pending one-time code (shown in the profile only)",
                        max_length=64,
                    ),
                ),
                ("code_expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("linked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "blocked_at",
                    fields.DatetimeField(
                        null=True,
                        description="the user blocked the bot: nothing is sent",
                        auto_now=False,
                        auto_now_add=False,
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "telegram_links",
                "app": "telegram",
                "pk_attr": "user_id",
                "table_description": "A user's Telegram chat, keyed by the user, and while linking, the one-time code of its deep link.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="TelegramSent",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "key",
                    fields.CharField(unique=True, description="<kind>:<subject id>:<chat id>[:masked]", max_length=255),
                ),
                ("message_id", fields.BigIntField(null=True)),
                ("sent_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "telegram_sent",
                "app": "telegram",
                "pk_attr": "id",
                "table_description": "One message delivered to one chat: a retried job does not send it twice.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="TelegramState",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("next_update_id", fields.BigIntField(default=0)),
            ],
            options={
                "table": "telegram_state",
                "app": "telegram",
                "pk_attr": "id",
                "table_description": "The poller's place in the update stream (getUpdates ``offset``), one row.",
            },
            bases=["Model"],
        ),
    ]
