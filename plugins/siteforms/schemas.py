"""Settings of the site-forms plugin: the deployment's (plugins.toml) and a connection's."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

MIB = 1024 * 1024
#: the port ``perezvon smtp`` and ``perezvon serve`` listen on by default
DEFAULT_SMTP_PORT = 2525

#: a DNS name: dot-separated labels of letters, digits and inner hyphens
_DOMAIN = r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"


class SiteFormsSettings(Schema):
    """``[plugins.siteforms]`` in plugins.toml."""

    domain = fields.String(
        load_default="forms.perezvon.local",
        validate=validate.Regexp(_DOMAIN, error="Not a domain name."),
        metadata={
            "help": "the intake domain: technical addresses are <random>@<domain>; "
            "its MX record must point at this server"
        },
    )
    hostname = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(_DOMAIN, error="Not a host name."),
        metadata={"help": "the name in the SMTP greeting (default: the domain)"},
    )
    max_message_bytes = fields.Integer(
        load_default=10 * MIB,
        validate=validate.Range(min=16 * 1024, max=256 * MIB),
        metadata={"help": "larger messages are refused with 552 (advertised as SIZE)"},
    )
    max_recipients = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=1000),
        metadata={"help": "RCPT commands per message; more are answered 452 (the sender sends them later)"},
    )
    tls_cert = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"help": "PEM certificate (chain) file; with tls_key, STARTTLS is offered"},
    )
    tls_key = fields.String(load_default=None, allow_none=True, metadata={"help": "PEM private key file"})
    raw_retention_days = fields.Integer(
        load_default=30,
        validate=validate.Range(min=1, max=3650),
        metadata={"help": "how long the raw message is kept for support; the lead stays"},
    )
    session_timeout_seconds = fields.Float(
        load_default=300.0,
        validate=validate.Range(min=5, max=3600),
        metadata={"help": "an idle SMTP session is closed after this long (RFC 5321 asks for 5 minutes)"},
    )

    check_host = fields.String(
        load_default="127.0.0.1",
        validate=validate.Length(min=1, max=253),
        metadata={
            "help": "where the admin's 'send a test e-mail' goes when no SMTP intake runs in the web "
            "process: the intake's host as the web server reaches it"
        },
    )
    check_port = fields.Integer(
        load_default=DEFAULT_SMTP_PORT,
        validate=validate.Range(min=1, max=65535),
        metadata={"help": "the SMTP intake's port for the admin's test e-mail"},
    )

    @validates_schema
    def _certificate_and_key_together(self, data, **_):
        if bool(data.get("tls_cert")) != bool(data.get("tls_key")):
            field = "tls_key" if data.get("tls_cert") else "tls_cert"
            raise ValidationError("Set tls_cert and tls_key together.", field)


class SiteFormsAppSettings(Schema):
    """Per-connection settings of the site-forms application: none yet.

    The technical address is not a setting: it is made once per connection
    (:func:`perezvon.plugins.siteforms.addresses.technical_address`) and never changes,
    because the site's forms have it in their recipients.
    """
