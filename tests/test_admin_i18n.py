"""Every text of the admin has its Russian translation (Russian first, English second)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

from perezvon.web.admin import labels
from perezvon.web.admin.export import COLUMNS
from perezvon.web.admin.i18n import translate
from perezvon.web.admin.table_columns import COLUMNS as TABLE_COLUMNS
from perezvon.web.admin.views import redial

ROOT = Path(__file__).resolve().parent.parent
METHOD_MAP = [("web/admin/**.py", "python"), ("web/admin/templates/**.html", "jinja2")]
OPTIONS = {"web/admin/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}}


def _message_ids() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHOD_MAP, options_map=OPTIONS, keywords={"_": None, "translate": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_admin_text_is_in_russian():
    ids = _message_ids() | set(COLUMNS)
    for table in (
        labels.STATUS,
        labels.AUTO_TAG,
        labels.DIRECTION,
        labels.CHANNEL,
        labels.GRANT,
        labels.TRIGGER,
        labels.VISIT,
    ):
        ids |= set(table.values())
    ids |= set(labels.WEEKDAYS)
    ids |= {column.label for column in TABLE_COLUMNS}  # the Calls table's headers and its column chooser
    # the redial page's words for statuses and its preview's cases live in plain tables
    ids |= set(redial.LEG_WORDS.values()) | {title for title, _pairs in redial.SCENARIOS.values()}
    ids.add(redial.PERIOD_PROBLEM)
    assert len(ids) > 250  # the extraction found the templates
    missing = sorted(
        message
        for message in ids
        if message and translate(message, "ru") == message and not message.startswith("UTM") and message != "E-mail"
    )  # the same in Russian
    assert missing == []


def test_english_is_the_message_id():
    assert translate("Calls", "en") == "Calls" and translate("Calls", "ru") == "Звонки"
