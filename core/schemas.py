"""Input schemas of the core (marshmallow). Error messages are English ids,
translated when the response is written (:func:`perezvon.core.i18n.translate_errors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from perezvon.core.models import Channel
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.registry import Direction, RecordedNotice
from perezvon.core.storable import MAX_DB_INT, unstorable_values

MUST_CONSENT = "Consent to the processing of personal data is required."


def check_time_zone(value: str, message: str = "Unknown time zone.") -> None:
    """A marshmallow check shared by every schema with a time zone: an IANA name zoneinfo knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(message) from None


class PhoneField(fields.String):
    """A phone number, normalised to E.164 (default region RU)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise(text)
        except InvalidPhone as exc:
            raise ValidationError(str(exc)) from None


class OptionalPhoneField(PhoneField):
    """A phone number or nothing (an empty string)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON ``true`` or ``false`` only: not "yes", "on", 1 or "true", which marshmallow's Boolean takes."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UtmSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    source = fields.String(load_default="", validate=validate.Length(max=256))
    medium = fields.String(load_default="", validate=validate.Length(max=256))
    campaign = fields.String(load_default="", validate=validate.Length(max=256))
    content = fields.String(load_default="", validate=validate.Length(max=256))
    term = fields.String(load_default="", validate=validate.Length(max=256))


class VisitSchema(Schema):
    """How the visitor behaved before leaving the lead (sent by the site script)."""

    class Meta:
        unknown = EXCLUDE

    pages = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100000))
    seconds_on_site = fields.Integer(load_default=None, validate=validate.Range(min=0, max=10**7))
    trigger = fields.String(load_default="", validate=validate.Length(max=64))
    rule = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata={"description": "name of the app rule that matched by URL or UTM (spoken to the operator)"},
    )


_NO_UTM = {"source": "", "medium": "", "campaign": "", "content": "", "term": ""}


class LeadSchema(Schema):
    """``POST /api/v1/leads``: one lead from the site script or any client."""

    class Meta:
        unknown = EXCLUDE  # clients may send more than we keep; we never fail on it

    token = fields.String(
        required=True, validate=validate.Length(min=1, max=64), metadata={"description": "the connection's site token"}
    )
    phone = PhoneField(
        required=True,
        metadata={
            "description": "any common format (+7 912 000-00-01, 8 (912) 000-00-01 ...), a valid number of its "
            "country (Russia when no country code is given); stored as E.164, 422 when it is not a valid number"
        },
    )
    consent = StrictBoolean(
        required=True, metadata={"description": "personal-data consent (152-FZ): JSON `true`; anything else is 422"}
    )
    source = fields.String(
        load_default="api",
        validate=validate.Length(max=64),
        metadata={"description": "lead source key: widget, leadgen, ... (api when absent)"},
    )
    name = fields.String(load_default="", validate=validate.Length(max=200))
    office_id = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_DB_INT))
    department_id = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_DB_INT))
    preferred_at = fields.AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the time the visitor chose, ISO 8601 with offset; "
            "from a day before now to a year ahead (docs/calls.md#scheduling)"
        },
    )
    page_url = fields.String(load_default="", validate=validate.Length(max=2048))
    referrer = fields.String(load_default="", validate=validate.Length(max=2048))
    utm = fields.Nested(UtmSchema, load_default=lambda: dict(_NO_UTM))
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(Channel.ALL))
    visitor_id = fields.String(load_default="", validate=validate.Length(max=64))
    visit = fields.Nested(VisitSchema, load_default=dict)
    displayed_phone = fields.String(load_default="", validate=validate.Length(max=40))
    extra = fields.Dict(
        keys=fields.String(validate=validate.Length(max=64)),
        load_default=dict,
        metadata={"description": "source-specific data kept with the lead"},
    )

    @validates("consent")
    def _consent_given(self, value: bool, **_: Any) -> None:
        if value is not True:
            raise ValidationError(MUST_CONSENT)

    @validates_schema
    def _storable(self, data: dict[str, Any], **_: Any) -> None:
        """No NUL, lone surrogate, NaN/infinity or over-deep nesting anywhere, ``extra`` included
        (perezvon.core.storable): one bad lead must not fail the group it is written with."""
        errors = unstorable_values(data, max_text=None)
        if errors:
            raise ValidationError(errors)

    @post_load
    def _fill_visit(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["visit"] = {k: v for k, v in data["visit"].items() if v not in (None, "")}
        return data


#: a music on hold class as the PBX names it (a musiconhold.conf section; Asterisk allows up to 79
#: characters): nothing a PBX command line would split or interpret. ``\Z``, not ``$``: a trailing
#: newline would end the AMI header the class is sent in
MUSIC_CLASS = r"^[A-Za-z0-9_-]{1,79}\Z"


class DtmfCommandSchema(Schema):
    on = fields.Boolean(required=True)
    key = fields.String(required=True, validate=validate.Regexp(r"^[0-9*#]$", error="One key: 0-9, * or #."))


def _command(on: bool, key: str) -> fields.Nested:
    return fields.Nested(DtmfCommandSchema, load_default=lambda: {"on": on, "key": key})


class TelephonySettingsSchema(Schema):
    """A connection's telephony settings (docs/calls.md#telephony-settings), with their defaults."""

    class Meta:
        unknown = EXCLUDE

    first_direction = fields.String(load_default=Direction.OPERATOR_FIRST, validate=validate.OneOf(Direction.ALL))
    first_call_delay_seconds = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=86400),
        metadata={"help": "over 59 s: e-mail the lead instead of calling"},
    )
    extension_delay_seconds = fields.Float(load_default=2, validate=validate.Range(min=0, max=60))
    operator_ivr_delay_seconds = fields.Float(load_default=1, validate=validate.Range(min=0, max=60))
    operator_speak_seconds = fields.Float(
        load_default=15,
        validate=validate.Range(min=1, max=120),
        metadata={"help": "how long to wait for the operator's key"},
    )
    interrupt_operator_call = fields.Boolean(
        load_default=True, metadata={"help": "no key in time: end with 202 (else call the client)"}
    )
    client_ivr_delay_seconds = fields.Float(load_default=1, validate=validate.Range(min=0, max=60))
    dtmf_wait_seconds = fields.Float(load_default=5, validate=validate.Range(min=1, max=60))
    ring_timeout_seconds = fields.Float(load_default=30, validate=validate.Range(min=5, max=120))
    # DTMF commands
    call_client = _command(True, "1")
    connect = _command(True, "1")
    cancel_client = _command(True, "2")
    cancel_operator = _command(False, "9")
    repeat_info = _command(True, "0")
    # voicemail, voice, caller-id substitution
    detect_voicemail = fields.Boolean(load_default=True)
    voice = fields.String(load_default="female", validate=validate.OneOf(["female", "male"]))
    show_client_number_to_operator = fields.Boolean(load_default=True)
    never_substitute_to_operator = fields.Boolean(
        load_default=False, metadata={"help": "a carrier that forbids substitution"}
    )
    show_operator_number_to_client = fields.Boolean(load_default=True)
    show_tracking_number_to_client = fields.Boolean(load_default=False)
    custom_operator_number = OptionalPhoneField(
        load_default="", allow_none=True, metadata={"help": "shown to the client instead of the operator's"}
    )
    record = fields.Boolean(load_default=True)
    # announcements and waiting (docs/calls.md#announcements-and-waiting)
    recorded_notice = fields.String(
        load_default=RecordedNotice.NOBODY,
        validate=validate.OneOf(RecordedNotice.ALL, labels=["Nobody", "The operator", "The client", "Both"]),
        metadata={
            "label": "Recorded call notice",
            "help": 'who hears "the conversation is recorded" before the two are joined (only when recording)',
        },
    )
    hold_music = fields.Boolean(
        load_default=False,
        metadata={"label": "Hold music", "help": "client-first: the client hears music while the operator is rung"},
    )
    hold_music_class = fields.String(
        load_default="default",
        validate=validate.Regexp(
            MUSIC_CLASS, error="A music on hold class name: 1 to 79 Latin letters, digits, _ or -."
        ),
        metadata={"label": "Hold music class", "help": "a class of the PBX's musiconhold.conf"},
    )


class AnnouncementSettingsSchema(Schema):
    """What the robot says (docs/calls.md#announcements): each switch adds one part."""

    class Meta:
        unknown = EXCLUDE

    site_to_operator = fields.Boolean(load_default=True)
    site_to_client = fields.Boolean(load_default=True)
    office_to_operator = fields.Boolean(load_default=True)
    department_to_operator = fields.Boolean(load_default=True)
    name_to_operator = fields.Boolean(load_default=True)
    name_to_client = fields.Boolean(load_default=False)
    rule_to_operator = fields.Boolean(load_default=True)
    extra_to_operator = fields.String(load_default="", validate=validate.Length(max=500))
    extra_to_client = fields.String(load_default="", validate=validate.Length(max=500))


NO_WORKING_DAY = "The schedule has no working day: set at least one."


def _valid_time(text: str, *, allow_midnight_end: bool = False) -> bool:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except (AttributeError, ValueError):
        return False
    if allow_midnight_end and (hours, minutes) == (24, 0):
        return True
    return 0 <= hours < 24 and 0 <= minutes < 60 and len(text) == 5


class WorkingHoursSchema(Schema):
    """A connection's time zone, weekly schedule and convenient time (docs/calls.md#scheduling).

    ``schedule`` maps ISO weekdays "1" (Monday) .. "7" to ``["HH:MM", "HH:MM"]``
    or ``null`` for a day off; "24:00" closes at midnight.
    """

    timezone = fields.String(load_default="Europe/Moscow")
    schedule = fields.Dict(
        keys=fields.String(validate=validate.OneOf([str(d) for d in range(1, 8)])),
        values=fields.List(fields.String(), allow_none=True),
        required=True,
    )
    convenient_time = fields.String(load_default="10:00")

    @validates("timezone")
    def _known_zone(self, value: str, **_: Any) -> None:
        check_time_zone(value)

    @validates("convenient_time")
    def _time_of_day(self, value: str, **_: Any) -> None:
        if not _valid_time(value):
            raise ValidationError("Not a time of day (HH:MM).")

    @validates("schedule")
    def _hours(self, value: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        for day, span in value.items():
            if span is None:
                continue
            if len(span) != 2 or not _valid_time(span[0]) or not _valid_time(span[1], allow_midnight_end=True):
                errors[day] = ["Give opening and closing as HH:MM."]
            elif span[1] <= span[0] and span[1] != "24:00":
                errors[day] = ["Closing must be after opening."]
        if errors:
            raise ValidationError(errors)
        if not any(value.get(str(day)) for day in range(1, 8)):
            raise ValidationError(NO_WORKING_DAY)


#: one instance of each, shared by the intake and the callbacks: a marshmallow schema and its fields
#: refer to each other, so one made per call left ~140 objects a call for the garbage collector
#: (BENCHMARKS.md "Reach burst", fourth session)
TELEPHONY_SETTINGS = TelephonySettingsSchema()
ANNOUNCEMENT_SETTINGS = AnnouncementSettingsSchema()
