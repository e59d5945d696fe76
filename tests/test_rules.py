"""Pure rules: working hours, the redial matrix, statuses, channels, phones."""

import datetime as dt

import pytest

from perezvon.core import channels, redial
from perezvon.core.phones import InvalidPhone, normalise
from perezvon.core.schedule import Hours, ScheduleError, first_attempt_at
from perezvon.core.statuses import classify

UTC = dt.UTC
WEEKDAYS = {str(d): ["09:00", "20:00"] for d in range(1, 6)} | {"6": None, "7": None}


def msk(*args):
    from zoneinfo import ZoneInfo

    return dt.datetime(*args, tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)


def test_inside_working_hours_the_call_is_now_plus_delay():
    hours = Hours("Europe/Moscow", WEEKDAYS)
    now = msk(2026, 11, 18, 12, 0)  # a Wednesday
    assert first_attempt_at(hours, now) == now
    assert first_attempt_at(hours, now, delay_seconds=30) == now + dt.timedelta(seconds=30)


def test_after_hours_and_weekend_wait_for_monday_morning():
    hours = Hours("Europe/Moscow", WEEKDAYS)
    assert first_attempt_at(hours, msk(2026, 11, 20, 21, 0)) == msk(2026, 11, 23, 9, 0)  # Friday night
    assert first_attempt_at(hours, msk(2026, 11, 18, 3, 0)) == msk(2026, 11, 18, 9, 0)  # before opening


def test_calendar_overrides_holidays_and_extra_days():
    hours = Hours(
        "Europe/Moscow",
        WEEKDAYS,
        overrides={
            dt.date(2026, 11, 23): None,  # Monday holiday
            dt.date(2026, 11, 22): ("10:00", "14:00"),  # Sunday worked
        },
    )
    assert first_attempt_at(hours, msk(2026, 11, 21, 12, 0)) == msk(2026, 11, 22, 10, 0)
    assert first_attempt_at(hours, msk(2026, 11, 22, 15, 0)) == msk(2026, 11, 24, 9, 0)


def test_a_preferred_time_is_honoured_inside_hours():
    hours = Hours("Europe/Moscow", WEEKDAYS)
    assert first_attempt_at(hours, msk(2026, 11, 18, 12, 0), preferred_at=msk(2026, 11, 18, 15, 30)) == msk(
        2026, 11, 18, 15, 30
    )


def test_round_the_clock_and_midnight():
    hours = Hours("Asia/Vladivostok", {str(d): ["00:00", "24:00"] for d in range(1, 8)})
    now = dt.datetime(2026, 11, 18, 13, 59, 59, tzinfo=UTC)  # 23:59:59 local
    assert hours.is_open(now) and hours.is_open(now + dt.timedelta(seconds=2))


def test_a_schedule_without_working_days_is_a_clear_error():
    with pytest.raises(ScheduleError, match="no working hours"):
        first_attempt_at(Hours("Europe/Moscow", {str(d): None for d in range(1, 8)}), msk(2026, 11, 18, 12, 0))


def test_dst_change_keeps_the_wall_clock_opening():
    hours = Hours("Europe/Berlin", {str(d): ["09:00", "18:00"] for d in range(1, 8)})
    # clocks go back on 2026-10-25 in Berlin: 09:00 local is 08:00 UTC after, 07:00 UTC before
    assert hours.next_opening(dt.datetime(2026, 10, 24, 20, 0, tzinfo=UTC)) == dt.datetime(
        2026, 10, 25, 8, 0, tzinfo=UTC
    )
    assert hours.next_opening(dt.datetime(2026, 10, 23, 20, 0, tzinfo=UTC)) == dt.datetime(
        2026, 10, 24, 7, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "op, client, expected",
    [
        (200, 200, None),
        (200, 201, None),
        (201, None, None),
        (404, None, None),
        (200, 404, None),
        (486, None, redial.NextStep(60, "operator_first")),
        (200, 486, redial.NextStep(180, "operator_first")),
        (200, 480, redial.NextStep(120, "operator_first")),
        (200, 203, redial.NextStep(600, "operator_first")),
    ],
)
def test_default_redial_matrix(op, client, expected):
    assert redial.next_step({}, chain_started="operator_first", next_number=2, operator=op, client=client) == expected


def test_a_connection_matrix_overrides_per_redial_and_chain():
    matrix = {
        "operator_first": {"2": {"200-486": {"period": 30, "direction": "client_first"}}, "3": {"*-*": "abort"}},
        "client_first": {"2": {"*-*": {"period": 5}}},
    }
    assert redial.next_step(
        matrix, chain_started="operator_first", next_number=2, operator=200, client=486
    ) == redial.NextStep(30, "client_first")
    assert redial.next_step(matrix, chain_started="operator_first", next_number=3, operator=200, client=486) is None
    assert redial.next_step(
        matrix, chain_started="client_first", next_number=2, operator=None, client=480
    ) == redial.NextStep(5, "client_first")
    assert redial.next_step(matrix, chain_started="operator_first", next_number=6, operator=486, client=None) is None


@pytest.mark.parametrize(
    "op, client, direction, status",
    [
        (200, 200, "operator_first", "successful"),
        (200, 204, "operator_first", "lost"),
        (204, None, "client_first", "lost"),
        (486, None, "operator_first", "failed"),
        (202, None, "operator_first", "failed"),
        (200, 486, "operator_first", "unsuccessful"),
        (200, 203, "operator_first", "unsuccessful"),
        (None, 480, "client_first", "unsuccessful"),
        (200, 201, "operator_first", "cancelled"),
        (201, None, "operator_first", "cancelled"),
    ],
)
def test_display_statuses(op, client, direction, status):
    assert classify(op, client, direction)[0] == status


@pytest.mark.parametrize(
    "kwargs, channel",
    [
        ({"page_url": "https://a.ru/?gclid=1", "referrer": "https://google.com/", "utm_medium": ""}, "ads"),
        ({"page_url": "https://a.ru/", "referrer": "", "utm_medium": "cpc"}, "ads"),
        ({"page_url": "https://a.ru/", "referrer": "https://yandex.ru/search", "utm_medium": ""}, "organic"),
        ({"page_url": "https://a.ru/", "referrer": "https://vk.com/wall", "utm_medium": ""}, "social"),
        ({"page_url": "https://a.ru/", "referrer": "https://blog.example/post", "utm_medium": ""}, "referral"),
        ({"page_url": "https://a.ru/x", "referrer": "https://www.a.ru/", "utm_medium": ""}, "direct"),
        ({"page_url": "https://a.ru/", "referrer": "", "utm_medium": ""}, "direct"),
    ],
)
def test_channel_detection(kwargs, channel):
    assert channels.detect(own_domains=["a.ru"], **kwargs) == channel


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("+48 601 234 567", "+48601234567"),
    ],
)
def test_phones_are_normalised(raw, e164):
    assert normalise(raw) == e164


@pytest.mark.parametrize("raw", ["", "12", "+7 000", "hello", "1" * 50])
def test_bad_phones_are_refused(raw):
    with pytest.raises(InvalidPhone):
        normalise(raw)


def test_working_hours_settings_are_validated():
    from marshmallow import ValidationError

    from perezvon.core.schemas import NO_WORKING_DAY, WorkingHoursSchema

    ok = WorkingHoursSchema().load(
        {"timezone": "Asia/Yekaterinburg", "schedule": {"1": ["09:00", "18:00"], "6": None, "7": ["10:00", "24:00"]}}
    )
    assert ok["schedule"]["7"] == ["10:00", "24:00"] and ok["convenient_time"] == "10:00"
    with pytest.raises(ValidationError) as none_open:
        WorkingHoursSchema().load({"schedule": {str(d): None for d in range(1, 8)}})
    assert none_open.value.messages == {"schedule": [NO_WORKING_DAY]}
    with pytest.raises(ValidationError) as bad:
        WorkingHoursSchema().load(
            {
                "timezone": "Mars/Olympus",
                "convenient_time": "25:00",
                "schedule": {"1": ["18:00", "09:00"], "2": ["9", "18:00"], "8": None},
            }
        )
    messages = bad.value.messages
    assert messages["timezone"] == ["Unknown time zone."]
    assert messages["convenient_time"] == ["Not a time of day (HH:MM)."]
    assert messages["schedule"]["1"] == ["Closing must be after opening."]
    assert messages["schedule"]["2"] == ["Give opening and closing as HH:MM."]
    assert "8" in messages["schedule"]


def test_a_redial_matrix_is_validated_before_it_is_saved():
    good = {
        "operator_first": {"2": {"486-*": {"period": 60, "direction": "client_first"}, "*-*": "abort"}},
        "client_first": {"5": {"--480": {"period": 30}}},
    }
    assert redial.validate_matrix(good) is good
    with pytest.raises(redial.MatrixError) as bad:
        redial.validate_matrix(
            {
                "sideways": {},
                "operator_first": {
                    "6": {},
                    "2": {
                        "486": "abort",
                        "200-480": {"period": -1},
                        "200-486": {"period": 10, "direction": "up"},
                        "*-*": "later",
                    },
                },
            }
        )
    assert bad.value.errors == {
        "sideways": ["Unknown chain: use operator_first or client_first."],
        "operator_first.6": ["Redials are numbered 2 to 5."],
        "operator_first.2.486": ["A status pair looks like 486-* or 200-480."],
        "operator_first.2.200-480": ["The period is whole seconds, up to a week."],
        "operator_first.2.200-486": ["The direction is operator_first or client_first."],
        "operator_first.2.*-*": ['A rule is "abort" or {"period": seconds, "direction": ...}.'],
    }
