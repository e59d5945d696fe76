"""SMS providers behind one interface (docs/sms.md): SMS.ru, SMSC and a generic HTTP gateway.

Each provider sends one text to one number and either returns a short excerpt of the
provider's answer (stored with the delivery) or raises :class:`DeliveryError`:
``retry=True`` for network errors, 5xx, 429 and the provider's own "try later" codes,
``retry=False`` for what trying again cannot fix (a wrong key, no money, a wrong number).
No message ever holds a key or a password: every request passes them as ``secrets`` to
:class:`HttpPush`, which blanks them out of what it raises and of the stored excerpt.

The request shapes follow the providers' documented HTTP APIs as we know them:

* SMS.ru -- ``POST https://sms.ru/sms/send`` (form: ``api_id``, ``to``, ``msg``, ``json=1``,
  optional ``from``); the JSON answer has ``status`` "OK"/"ERROR" and ``status_code`` at the top
  and per number in ``sms.<number>``; 100 is "accepted";
* SMSC -- ``POST https://smsc.ru/sys/send.php`` (form: ``login``, ``psw``, ``phones``, ``mes``,
  ``fmt=3``, ``charset=utf-8``, optional ``sender``); the JSON answer is ``{"id", "cnt"}`` or
  ``{"error", "error_code"}``;
* a generic gateway -- any method, a URL template with ``{phone}`` and ``{text}``
  (URL-encoded), optional basic auth or a header with a token; any 2xx is success.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from perezvon.api import CheckFailed, DeliveryError, HttpPush, excerpt, json_body

SMSRU_URL = "https://sms.ru"
SMSC_URL = "https://smsc.ru"
NONE, SMSRU, SMSC, GENERIC = "none", "smsru", "smsc", "generic"
PROVIDERS = (NONE, SMSRU, SMSC, GENERIC)

#: SMS.ru codes worth trying again later: 220 "service temporarily unavailable", 230-232 the
#: per-number limits (messages a day, the same text a minute / a day)
SMSRU_TEMPORARY = frozenset({220, 230, 231, 232})
#: SMSC error codes worth trying again later: 4 "IP blocked for a while", 9 "too many identical requests"
SMSC_TEMPORARY = frozenset({4, 9})
SMSC_MEANING = {
    1: "bad parameters",
    2: "wrong login or password",
    3: "not enough money on the account",
    4: "the IP address is blocked for a while",
    5: "wrong date format",
    6: "the message is denied (text or sender name)",
    7: "wrong phone number",
    8: "the message cannot be delivered to this number",
    9: "too many identical requests",
}
SMSRU_MEANING = {
    200: "wrong api_id",
    201: "not enough money on the account",
    202: "wrong phone number",
    203: "no message text",
    204: "the sender name is not approved",
    205: "the message is too long",
    206: "the daily limit is exceeded",
    207: "messages cannot be sent to this number",
    209: "the number is in the stop list",
    220: "the service is temporarily unavailable",
    230: "the daily limit of messages to this number is exceeded",
    231: "the same message to this number within a minute",
    232: "the same message to this number within a day",
    300: "wrong token",
    301: "wrong api_id or password",
    302: "the account is not confirmed",
}

PLACEHOLDERS = ("phone", "text")


def placeholders_of(template: str) -> list[str]:
    """The ``{names}`` in a template; a stray brace raises ValueError."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class ProviderSettings(Schema):
    """Which provider and its credentials: the deployment's ``[plugins.sms]`` and, optionally,
    a connection's own (the follow-up's settings extend this schema)."""

    provider = fields.String(
        load_default=NONE,
        validate=validate.OneOf(PROVIDERS, labels=("None", "SMS.ru", "SMSC", "HTTP gateway")),
        metadata={"label": "SMS provider", "help": "Where the messages are sent from"},
    )
    sender = fields.String(
        load_default="",
        validate=validate.Length(max=11),
        metadata={"label": "Sender name", "help": "Approved with the provider; empty: the provider's default"},
    )
    api_id = fields.String(
        load_default="", metadata={"secret": True, "label": "SMS.ru API key (api_id)", "help": "sms.ru → API"}
    )
    login = fields.String(load_default="", metadata={"label": "Login", "help": "SMSC or the gateway's user"})
    password = fields.String(
        load_default="",
        metadata={"secret": True, "label": "Password", "help": "SMSC password (or API password) or the gateway's"},
    )
    base_url = fields.String(
        load_default="",
        validate=validate.Length(max=300),
        metadata={"label": "API URL", "help": "Empty: https://sms.ru or https://smsc.ru"},
    )
    gateway_method = fields.String(
        load_default="GET",
        validate=validate.OneOf(("GET", "POST"), labels=("GET request", "POST request")),
        metadata={"label": "Gateway method", "help": "GET or POST"},
    )
    gateway_url = fields.String(
        load_default="",
        validate=validate.Length(max=1000),
        metadata={
            "label": "Gateway URL template",
            "help": "With {phone} and {text}, e.g. https://gw.example/send?to={phone}&text={text}",
        },
    )
    gateway_auth = fields.String(
        load_default="none",
        validate=validate.OneOf(("none", "basic", "header"), labels=("None", "Basic auth", "Header with a token")),
        metadata={"label": "Gateway authentication"},
    )
    header_name = fields.String(
        load_default="Authorization", validate=validate.Length(max=100), metadata={"label": "Token header"}
    )
    header_value = fields.String(load_default="", metadata={"secret": True, "label": "Token header value"})

    @validates("base_url")
    def _base_url(self, value: str, **_: Any) -> None:
        if value and not value.startswith(("http://", "https://")):
            raise ValidationError("An address starting with https://, e.g. https://sms.ru.")

    @validates("gateway_url")
    def _gateway_url(self, value: str, **_: Any) -> None:
        if not value:
            return
        if not value.startswith(("http://", "https://")):
            raise ValidationError("An address starting with https://, e.g. https://sms.ru.")
        try:
            names = placeholders_of(value)
        except ValueError:
            raise ValidationError("Only {phone} and {text} may stand in braces.") from None
        if any(name not in PLACEHOLDERS for name in names) or "phone" not in names:
            raise ValidationError("Only {phone} and {text} may stand in braces.")

    @validates_schema
    def _credentials(self, data: dict[str, Any], **_: Any) -> None:
        provider = data.get("provider", NONE)
        errors: dict[str, list[str]] = {}
        if provider == SMSRU and not data.get("api_id", "").strip():
            errors["api_id"] = ["SMS.ru needs its API key (api_id)."]
        if provider == SMSC:
            if not data.get("login", "").strip():
                errors["login"] = ["SMSC needs the login and the password."]
            if not data.get("password", "").strip():
                errors["password"] = ["SMSC needs the login and the password."]
        if provider == GENERIC:
            if not data.get("gateway_url"):
                errors["gateway_url"] = ["The gateway needs a URL template with {phone} and {text}."]
            auth = data.get("gateway_auth", "none")
            if auth == "basic" and not data.get("login", "").strip():
                errors["login"] = ["Basic auth needs a login and a password."]
            if auth == "header" and not (data.get("header_value", "").strip() and data.get("header_name", "").strip()):
                errors["header_value"] = ["Header auth needs the header's name and value."]
        if errors:
            raise ValidationError(errors)


def digits(phone: str) -> str:
    """``+79161234567`` -> ``79161234567``: the providers want international digits."""
    return "".join(ch for ch in phone if ch.isdigit())


class SmsProvider:
    """Sends one text to one number; see the module's docstring for what it raises."""

    name = "none"

    def __init__(self, settings: Mapping[str, Any], http: HttpPush) -> None:
        self.settings = settings
        self.http = http

    @property
    def secrets(self) -> list[str]:
        return [str(self.settings.get(k) or "") for k in ("api_id", "password", "header_value")]

    def _url(self, default: str, path: str) -> str:
        return (str(self.settings.get("base_url") or "") or default).rstrip("/") + path

    async def send(self, phone: str, text: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    async def check(self) -> None:
        """Ask the provider whether it accepts the credentials (a balance read, which sends nothing);
        raise :class:`CheckFailed` on the field at fault. The default asks nothing."""
        return None

    async def _balance(self, url: str, form: dict[str, str]) -> Any:
        response = await self.http.send("POST", url, data=form, secrets=self.secrets)
        return json_body(response, self.secrets)


class NoProvider(SmsProvider):
    async def send(self, phone: str, text: str) -> str:
        raise DeliveryError("no SMS provider is set up (plugins.toml [plugins.sms] or the connection's)", retry=False)

    async def check(self) -> None:
        raise CheckFailed({"provider": ["No SMS provider is set up in plugins.toml: choose one for this connection."]})


class SmsRu(SmsProvider):
    name = "SMS.ru"

    async def send(self, phone: str, text: str) -> str:
        form = {"api_id": self.settings["api_id"].strip(), "to": digits(phone), "msg": text, "json": "1"}
        if self.settings.get("sender"):
            form["from"] = self.settings["sender"]
        response = await self.http.send("POST", self._url(SMSRU_URL, "/sms/send"), data=form, secrets=self.secrets)
        answer = json_body(response, self.secrets)
        shown = excerpt(response, self.secrets)
        if not isinstance(answer, dict):
            raise DeliveryError("SMS.ru answered something unexpected", retry=False, response=shown)
        code = _int(answer.get("status_code"))
        if answer.get("status") != "OK":
            raise self._error(code, shown)
        per_number = (answer.get("sms") or {}).get(digits(phone))
        if isinstance(per_number, dict) and (
            per_number.get("status") != "OK" or _int(per_number.get("status_code")) != 100
        ):
            raise self._error(_int(per_number.get("status_code")), shown)
        return shown

    async def check(self) -> None:
        """``POST /my/balance`` with the key: SMS.ru answers 200 "wrong api_id" for a key it does not know."""
        answer = await self._balance(
            self._url(SMSRU_URL, "/my/balance"), {"api_id": self.settings["api_id"].strip(), "json": "1"}
        )
        if isinstance(answer, dict) and answer.get("status") != "OK":
            code = _int(answer.get("status_code"))
            if code in (200, 300, 301):
                raise CheckFailed({"api_id": ["SMS.ru does not know this API key."]})
            raise CheckFailed(
                {
                    "_schema": [
                        (
                            "SMS.ru answered with an error: %(answer)s",
                            {"answer": f"{code} {SMSRU_MEANING.get(code or 0, '')}"},
                        )
                    ]
                }
            )

    def _error(self, code: int | None, shown: str) -> DeliveryError:
        meaning = SMSRU_MEANING.get(code or 0, "an error")
        retry = code in SMSRU_TEMPORARY
        later = "; trying again later" if retry else ""
        return DeliveryError(f"SMS.ru refused the message: {code} {meaning}{later}", retry=retry, response=shown)


class Smsc(SmsProvider):
    name = "SMSC"

    async def send(self, phone: str, text: str) -> str:
        form = {
            "login": self.settings["login"].strip(),
            "psw": self.settings["password"],
            "phones": digits(phone),
            "mes": text,
            "fmt": "3",
            "charset": "utf-8",
        }
        if self.settings.get("sender"):
            form["sender"] = self.settings["sender"]
        response = await self.http.send("POST", self._url(SMSC_URL, "/sys/send.php"), data=form, secrets=self.secrets)
        answer = json_body(response, self.secrets)
        shown = excerpt(response, self.secrets)
        if not isinstance(answer, dict):
            raise DeliveryError("SMSC answered something unexpected", retry=False, response=shown)
        if "error" in answer or "error_code" in answer:
            code = _int(answer.get("error_code"))
            retry = code in SMSC_TEMPORARY
            later = "; trying again later" if retry else ""
            meaning = SMSC_MEANING.get(code or 0, "an error")
            raise DeliveryError(f"SMSC refused the message: {code} {meaning}{later}", retry=retry, response=shown)
        if "id" not in answer:
            raise DeliveryError("SMSC answered without a message id", retry=False, response=shown)
        return shown

    async def check(self) -> None:
        """``POST /sys/balance.php`` with the login: error 2 is a wrong login or password."""
        form = {"login": self.settings["login"].strip(), "psw": self.settings["password"], "fmt": "3"}
        answer = await self._balance(self._url(SMSC_URL, "/sys/balance.php"), form)
        if isinstance(answer, dict) and ("error" in answer or "error_code" in answer):
            code = _int(answer.get("error_code"))
            if code == 2:
                raise CheckFailed({"password": ["SMSC does not accept this login and password."]})
            if code == 4:
                raise CheckFailed({"_schema": ["SMSC blocked this server's IP address for a while: try later."]})
            raise CheckFailed(
                {
                    "_schema": [
                        (
                            "SMSC answered with an error: %(answer)s",
                            {"answer": f"{code} {SMSC_MEANING.get(code or 0, '')}"},
                        )
                    ]
                }
            )


class Gateway(SmsProvider):
    name = "HTTP gateway"

    async def send(self, phone: str, text: str) -> str:
        url = self.settings["gateway_url"].format(phone=quote(digits(phone), safe=""), text=quote(text, safe=""))
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if self.settings.get("gateway_auth") == "basic":
            auth = (self.settings["login"], self.settings["password"])
        elif self.settings.get("gateway_auth") == "header":
            headers[self.settings["header_name"].strip()] = self.settings["header_value"].strip()
        response = await self.http.send(
            self.settings.get("gateway_method", "GET"), url, headers=headers, auth=auth, secrets=self.secrets
        )
        return excerpt(response, self.secrets)


def provider_for(settings: Mapping[str, Any], http: HttpPush) -> SmsProvider:
    kind = settings.get("provider", NONE)
    cls: type[SmsProvider] = {SMSRU: SmsRu, SMSC: Smsc, GENERIC: Gateway}.get(kind, NoProvider)
    return cls(settings, http)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class DeploymentSettings(ProviderSettings):
    """``[plugins.sms]`` in plugins.toml: the provider every connection uses unless it sets its own,
    and whether operators' alerts go by SMS too."""

    alerts = fields.Boolean(
        load_default=False, metadata={"label": "Operators' alerts by SMS", "help": "Call results to recipients"}
    )
    language = fields.String(
        load_default="ru", validate=validate.OneOf(("ru", "en")), metadata={"label": "Language of the alerts"}
    )

    @validates_schema
    def _alerts(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("alerts") and data.get("provider", NONE) == NONE:
            raise ValidationError({"alerts": ["Alerts by SMS need a provider."]})
