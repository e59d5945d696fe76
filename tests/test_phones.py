"""The server's reading of phone numbers (core/phones.py) against the table the browser test
uses too (tests/phone_cases.json; tests/site/test_site_phones.py drives the site runtime's
phone input with the same entries), and the lead API's answer for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perezvon.core.i18n import gettext
from perezvon.core.phones import InvalidPhone, normalise

CASES = json.loads(Path(__file__).with_name("phone_cases.json").read_text())
ACCEPTED = [(case["entry"], case["e164"]) for case in CASES["accepted"]]
REFUSED = [(case["entry"], case["error"]) for case in CASES["refused"]]


@pytest.mark.parametrize("entry, e164", ACCEPTED)
def test_every_common_form_is_the_same_number(entry, e164):
    assert normalise(entry) == e164


@pytest.mark.parametrize("entry, error", REFUSED)
def test_letters_and_extensions_are_refused_with_their_own_reason(entry, error):
    with pytest.raises(InvalidPhone) as refused:
        normalise(entry)
    assert str(refused.value) == error
    assert gettext(error, "ru") != error  # the visitor reads it in Russian


def test_the_table_holds_at_least_ten_forms_of_one_number():
    assert len({entry for entry, e164 in ACCEPTED if e164 == "+79165554433"}) >= 10


async def test_the_lead_api_answers_each_form_as_the_table_says(perezvon_client, perezvon_site, perezvon_app):
    for entry, e164 in ACCEPTED:
        # the duplicate window would answer the second form of one number with the first lead
        await perezvon_app.redis.delete(f"pv:dup:{perezvon_site.id}:{e164}")
        answer = await perezvon_client.post(
            "/api/v1/leads", json={"token": perezvon_site.token, "phone": entry, "consent": True}
        )
        assert answer.status_code == 201, (entry, answer.text)
        from perezvon.core.models import Lead

        assert (await Lead.get(id=answer.json()["lead_id"])).phone == e164
    for entry, error in REFUSED:
        answer = await perezvon_client.post(
            "/api/v1/leads",
            json={"token": perezvon_site.token, "phone": entry, "consent": True},
            headers={"Accept-Language": "ru"},
        )
        assert answer.status_code == 422, entry
        assert answer.json()["errors"]["phone"] == [gettext(error, "ru")]
