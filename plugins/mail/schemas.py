"""Deployment settings of the mail plugin (``[plugins.mail]`` in plugins.toml)."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from perezvon.api import LOCALES

SECURITY_MODES = ("starttls", "tls", "none")


def single_address(value: str) -> None:
    """Accept exactly one address, checked by the same header machinery that later writes it."""
    if not value:
        return
    message = EmailMessage(policy=SMTP)
    try:
        message["From"] = value
        addresses = message["From"].addresses
    except (ValueError, IndexError, TypeError):
        raise ValidationError("Not a valid e-mail address.") from None
    if len(addresses) != 1 or not addresses[0].domain or message["From"].defects:
        raise ValidationError("Not a valid e-mail address.")


class MailSettings(Schema):
    from_address = fields.String(
        load_default="Perezvon <noreply@localhost>",
        validate=single_address,
        metadata={"help": "the From of every message, e.g. 'Perezvon <noreply@example.com>'"},
    )
    reply_to = fields.String(
        load_default="", validate=single_address, metadata={"help": "Reply-To of every message; empty: none"}
    )
    relay_host = fields.String(
        load_default="",
        metadata={"help": "SMTP relay to send through; empty: messages are written as .eml files to outbox_dir"},
    )
    relay_port = fields.Integer(load_default=587, validate=validate.Range(min=1, max=65535))
    security = fields.String(
        load_default="starttls",
        validate=validate.OneOf(SECURITY_MODES),
        metadata={
            "help": "starttls (port 587), tls (implicit TLS, port 465) or none (plain text, trusted networks only)"
        },
    )
    username = fields.String(load_default="", metadata={"help": "relay login; empty: no AUTH"})
    password = fields.String(load_default="", metadata={"secret": True, "help": "relay password"})
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=1, max=300),
        metadata={"help": "seconds for each step of the SMTP conversation"},
    )
    language = fields.String(
        load_default="ru", validate=validate.OneOf(LOCALES), metadata={"help": "language of the messages: ru or en"}
    )
    outbox_dir = fields.String(
        load_default="",
        metadata={"help": "where messages go without a relay; empty: <data dir>/outbox, relative: under the data dir"},
    )

    @validates("relay_host")
    def _host_has_no_scheme(self, value: str, **_) -> None:
        if "://" in value or "/" in value or any(ch.isspace() for ch in value):
            raise ValidationError("A host name or address only, e.g. smtp.example.com.")

    @validates_schema
    def _login_needs_both_parts(self, data: dict, **_) -> None:
        if bool(data.get("username")) != bool(data.get("password")):
            raise ValidationError("Set both username and password, or neither.", field_name="username")
        if data.get("username") and not data.get("relay_host"):
            raise ValidationError("A login needs a relay_host.", field_name="relay_host")
