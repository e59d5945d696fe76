"""One language at a time (issue 18): every admin page and the .xlsx export, rendered in Russian and in
English, hold no text of the other language.

The pages come from the route table (``ADMIN_ROUTES``: every GET route, its path parameters filled with
seeded ids, every settings tab, every app's and integration's page), so a page added later is checked
without touching this file; a route with a path parameter the seed does not know fails with its name
(add the id to ``Seeded.params``). Visible text is what a person reads: element text outside ``<script>`` and
``<style>``, and the attributes read aloud or shown (placeholder, title, aria-label, alt, button values).

What may stay in Latin on a Russian page: proper names and codes in :data:`LATIN_ALLOWED`, and anything
that is not a word (URLs, e-mail addresses, phone numbers, ids, code such as ``utm_source``).
What the test seeded (names, domains, tags) is removed before the check: it is the user's data, not the
admin's text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import re
import secrets
import time
import uuid
from html.parser import HTMLParser

import openpyxl
from live_helpers import live_server
from test_admin_helpers import PASSWORD, login, make_call, make_user

from perezvon.core import enablement
from perezvon.core.models import (
    AccessGrant,
    ActivationToken,
    Attempt,
    CallNote,
    CallTag,
    Connection,
    Delivery,
    Department,
    Lead,
    NotificationRecipient,
    Office,
    OperatorNumber,
    PluginEnablement,
    Project,
    User,
)
from perezvon.web.admin.labels import CHANNEL, STATUS
from perezvon.web.admin.routes import ADMIN_ROUTES
from perezvon.web.admin.views.projects import KINDS
from perezvon.web.admin.views.settings import TABS
from perezvon.web.app import create_app

#: proper names, brands, protocols and codes a Russian page may show in Latin letters (whole words or phrases)
LATIN_ALLOWED = {
    "Perezvon",
    "Data API",
    "Measurement Protocol",
    "JavaScript",
    "gtag",
    "ga",
    "Authorization",
    "Bearer",
    "Webhooks",  # Calltouch's menu "API & Webhooks"
    "Yandex Metrika",
    "Google Analytics",
    "Calltouch",
    "CoMagic",
    "amoCRM",
    "amo",  # amoCRM's own menu, "amoМаркет"
    "Asterisk",
    "AMI",
    "AGI",
    "ARI",
    "UTM",
    "URL",
    "API",
    "E-mail",
    "e-mail",
    "SMTP",
    "IMAP",
    "DTMF",
    "SIP",
    "IP",
    "ID",
    "IVR",
    "SMS",
    "PBX",
    "TLS",
    "SSL",
    "HMAC",
    "SHA",
    "UTC",
    "OAuth",
    "GET",  # HTTP methods (the SMS gateway's)
    "POST",
    "px",  # the CSS unit of sizes
}
#: Cyrillic words an English page may show: none (the language switch reads RU / EN)
CYRILLIC_ALLOWED: set[str] = set()

#: attributes a person reads
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt", "label")
#: code is in no language: <code>, <pre>, <kbd>, <samp> show the site snippet, ids and settings as they are
SKIPPED_ELEMENTS = {"script", "style", "noscript", "code", "pre", "kbd", "samp"}

_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*")
_CYRILLIC_WORD = re.compile(r"[А-Яа-яЁё]+(?:-[А-Яа-яЁё]+)*")
#: not words at all: URLs, e-mail addresses, paths, dotted/underscored codes, ids, {placeholders}, numbers
_URLS_AND_ADDRESSES = re.compile(
    r"https?://\S*|wss?://\S*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)
_NOT_WORDS = [
    re.compile(r"\{\{.*?\}\}|\{[\w.]+\}|%\([\w]+\)s|\$\{[\w.]+\}"),
    re.compile(r"(?<![\wА-Яа-яЁё])[\w./-]*(?:[._/][\w-]+)+[\w./-]*"),  # paths, file names, codes with dots
    re.compile(r"\b\w*\d\w*\b"),  # ids, hashes, numbers with letters (v2, 5xx, 200-486)
    re.compile(r"</?[a-z]+>"),  # an HTML tag named in an instruction
    re.compile(r"\b[\w$]+\([^)]*\)"),  # a call in code: ym(123, 'init'), gtag()
    re.compile(r"\b\w+:\w+\b"),  # scopes and keys: metrika:read
    re.compile(r"\bX-[\w-]+"),  # HTTP header names
    re.compile(r"\b[A-Z](?:[A-Z]+|-[A-Z]{2,})(?:-[A-Z]+)*\b"),  # all capitals: acronyms, codes (CRM, G-XXXXXXXXXX)
    re.compile(r"\b\w+_(?=\W|$)"),  # a code's prefix: perezvon_
]


class VisibleText(HTMLParser):
    """The text a person reads on a page: element text (not script/style) and the attributes shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_ELEMENTS:
            self._skip += 1
        values = dict(attrs)
        for name in READ_ATTRIBUTES:
            if values.get(name):
                self.parts.append(values[name] or "")
        if (
            tag == "input"
            and (values.get("type") or "").lower() in ("submit", "button", "reset")
            and values.get("value")
        ):
            self.parts.append(values["value"] or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in SKIPPED_ELEMENTS:
            self._skip -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_ELEMENTS and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.parts)


def _without(text: str, removed: list[str]) -> str:
    for value in removed:
        if value:
            text = text.replace(value, " ")
    return text


def foreign_words(text: str, locale: str, seeded: list[str], data_words: frozenset[str] = frozenset()) -> list[str]:
    """The words of ``text`` that belong to the other language (sorted, each once), leaving out
    ``data_words``: words people typed into records other tests left in the shared database."""
    return [word for word in _foreign_words(text, locale, seeded) if word not in data_words]


#: records people type, which staff pages list whichever test made them
_USER_DATA = (
    Project,
    Connection,
    Office,
    Department,
    OperatorNumber,
    User,
    Lead,
    CallTag,
    CallNote,
    NotificationRecipient,
)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def words_of_other_tests_data() -> frozenset[str]:
    """The words of every record other tests left: the suite shares one database, and a staff page
    lists them all, so a test's Latin tag ("call back Monday") must not count as a page's English."""
    words: set[str] = set()
    for model in _USER_DATA:
        for row in await model.all().values():
            for text in _strings(row):
                words.update(_LATIN_WORD.findall(text))
                words.update(_CYRILLIC_WORD.findall(text))
    return frozenset(words)


def _foreign_words(text: str, locale: str, seeded: list[str]) -> list[str]:
    text = _URLS_AND_ADDRESSES.sub(" ", text)
    text = _without(text, seeded)
    if locale == "ru":
        text = _without(
            text, sorted((name for name in LATIN_ALLOWED if " " in name or "-" in name), key=len, reverse=True)
        )
        for pattern in _NOT_WORDS:
            text = pattern.sub(" ", text)
        # a single letter is a code or a unit (A/B, x), not a word in a language
        return sorted({w for w in _LATIN_WORD.findall(text) if len(w) > 1 and w not in LATIN_ALLOWED})
    text = _without(text, sorted(CYRILLIC_ALLOWED, key=len, reverse=True))
    return sorted(set(_CYRILLIC_WORD.findall(text)))


# --- seeding ---------------------------------------------------------------------------------------


class Seeded:
    """Who signs in, ids to fill the routes' path parameters with, and the user data the check ignores."""

    def __init__(self, staff: User, member: User, connection: Connection) -> None:
        self.staff, self.member, self.connection = staff, member, connection
        self.params: dict[str, list[str]] = {}
        #: (the URL's plugin kind, key) of every app and integration
        self.plugin_pages: list[tuple[str, str]] = []
        self.data: list[str] = []
        #: words of the records other tests left before this seed (see words_of_other_tests_data)
        self.other_words: frozenset[str] = frozenset()


async def _seed(app) -> Seeded:
    other_words = await words_of_other_tests_data()
    # plugins other tests registered for a while (tests/site/test_site_phones.py) left their switches
    # behind; a page names such a plugin, no longer known, by its key
    registry = app.host.registry
    known = set(registry.applications) | set(registry.integrations)
    gone = await PluginEnablement.exclude(key__in=sorted(known)).values_list("key", flat=True)
    other_words |= {word for key in gone for word in _LATIN_WORD.findall(str(key))}
    tag = uuid.uuid4().hex[:6]
    project = await Project.create(name=f"Kappa{tag}", legal_entity=f"Kappa{tag} LLC")
    connection = await Connection.create(
        project=project,
        domain=f"kappa-{tag}.example",
        name=f"Kappa{tag} shop",
        extra_domains=[f"m.kappa-{tag}.example"],
    )
    number = await OperatorNumber.create(connection=connection, phone="+74951234567")
    office = await Office.create(connection=connection, name=f"Kappa{tag} office")
    department = await Department.create(connection=connection, name=f"Kappa{tag} dept")
    registry = app.host.registry
    for plugin_kind, attribute in KINDS.values():
        for key in getattr(registry, attribute):
            await enablement.enable(connection, plugin_kind, key)
    sources = ["api", *sorted(registry.lead_sources)]
    sources += sorted(app_.lead_source for app_ in registry.applications.values() if getattr(app_, "lead_source", None))
    calls = []
    base = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    for n, status in enumerate(STATUS):
        calls.append(
            await make_call(
                connection,
                phone=f"+7916777{n:04d}",
                name=f"Kappa{tag} client",
                status=status,
                created_at=base + dt.timedelta(minutes=n),
                source=sources[n % len(sources)],
                channel=list(CHANNEL)[n % len(CHANNEL)],
                office=office,
                department=department,
                utm_source="yandex",
                utm_medium="cpc",
                utm_campaign=f"kappa{tag}",
                page_url=f"https://kappa-{tag}.example/catalog",
                referrer="https://ya.ru/",
                visit={"pages": 3, "seconds_on_site": 75, "trigger": "exit", "rule": f"Kappa{tag} rule"},
            )
        )
    for n, source in enumerate(sources):  # every app's leads, so the app names show
        calls.append(
            await make_call(
                connection,
                phone=f"+7916778{n:04d}",
                name=f"Kappa{tag} client",
                source=source,
                channel=list(CHANNEL)[n % len(CHANNEL)],
                created_at=base - dt.timedelta(minutes=n + 1),
            )
        )
    rich = calls[0]
    now = dt.datetime.now(dt.UTC)
    await Attempt.create(
        call=rich,
        number=1,
        direction="operator_first",
        started_at=now,
        operator_status=486,
        display_status="failed",
        reason="operator number: busy",
    )
    await Attempt.create(
        call=rich,
        number=2,
        direction="client_first",
        started_at=now,
        operator_status=200,
        client_status=200,
        duration_seconds=150,
        display_status="successful",
        reason="the callback took place",
    )
    rich.first_direction = "operator_first"
    rich.attempts_made = 2
    rich.reason = "the callback took place"
    await rich.save(update_fields=["first_direction", "attempts_made", "reason"])
    for key in registry.integrations:
        await Delivery.create(call=rich, integration_key=key, event="lead_created", ok=False, status=503, response="")
    await CallTag.create(call=rich, name=f"kappa{tag}")
    staff = await make_user(staff=True, first_name=f"Kappa{tag}", last_name=f"Kappa{tag}")
    member = await make_user(level="full", connection=connection, first_name=f"Kappa{tag}")
    grant = await AccessGrant.get(user=member)
    raw = secrets.token_urlsafe(32)
    await ActivationToken.create(
        user=member, token_hash=hashlib.sha256(raw.encode()).hexdigest(), expires_at=now + dt.timedelta(days=1)
    )
    seeded = Seeded(staff, member, connection)
    seeded.params = {
        "project_id": [str(project.id)],
        "connection_id": [str(connection.id)],
        "call_id": [str(rich.id), str(calls[-1].id)],
        "tab": list(TABS),
        "token": [raw],
        # for pages of one record (a route with such a parameter is checked as soon as it is in the table)
        "user_id": [str(member.id)],
        "grant_id": [str(grant.id)],
        "office_id": [str(office.id)],
        "department_id": [str(department.id)],
        "number_id": [str(number.id)],
    }
    seeded.plugin_pages = [
        (kind, key) for kind, (_, attribute) in KINDS.items() for key in sorted(getattr(registry, attribute))
    ]
    seeded.data = [
        f"Kappa{tag} LLC",
        f"Kappa{tag} shop",
        f"Kappa{tag} office",
        f"Kappa{tag} dept",
        f"Kappa{tag} client",
        f"Kappa{tag} rule",
        f"kappa-{tag}.example",
        f"Kappa{tag}",
        f"kappa{tag}",
        "yandex",
        "cpc",
    ]
    seeded.other_words = other_words
    return seeded


# --- the pages -------------------------------------------------------------------------------------


def _urls(seeded: Seeded, export_id: str) -> list[str]:
    """Every GET page of the route table, its parameters filled in every way seeded."""
    params = {**seeded.params, "export_id": [export_id]}
    urls: list[str] = []
    unfilled = []
    for route in ADMIN_ROUTES:
        if "GET" not in route.methods or route.path.startswith("/lang/"):
            continue
        if route.name == "signed_recording":  # audio, or an error page: tests/test_recording_storage.py
            continue
        names = re.findall(r"{(\w+)}", route.path)
        if set(names) >= {"kind", "key"}:
            filled = [route.path.replace("{kind}", kind).replace("{key}", key) for kind, key in seeded.plugin_pages]
        elif "key" in names:  # the app editor's own routes: every app
            filled = [route.path.replace("{key}", key) for kind, key in seeded.plugin_pages if kind == "apps"]
        else:
            filled = [route.path]
        for name in names:
            if name in ("kind", "key"):
                continue
            if name not in params:
                unfilled.append(route.path)
                break
            filled = [url.replace("{" + name + "}", value) for url in filled for value in params[name]]
        else:
            urls += filled
    assert not unfilled, f"the test does not know how to fill these routes' parameters: {unfilled}"
    # the error pages a person meets: a call and a connection that are not there, a tab that is not
    connection = params["connection_id"][0]
    return [*urls, f"/calls/{uuid.uuid4()}", "/connections/999999", f"/connections/{connection}/settings/nothing"]


async def _set_language(client, locale: str) -> None:
    response = await client.get(f"/lang/{locale}?next=/profile")
    assert response.status_code == 303 and client.cookies.get("pz_lang") == locale


async def _export(client, csrf: str, connection_id: int) -> str:
    start = await client.post("/calls/export", data={"csrf_token": csrf, "connection": str(connection_id)})
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    deadline = time.monotonic() + 60
    while (await client.get(location + "/status")).json()["state"] == "running":
        assert time.monotonic() < deadline, "the export did not finish"
        await asyncio.sleep(0.1)
    return location


async def _check_pages(client, urls: list[str], locale: str, seeded: Seeded, who: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for url in urls:
        response = await client.get(url)
        if "text/html" not in response.headers.get("content-type", ""):
            continue  # downloads, JSON, recordings: checked elsewhere (the export below)
        assert response.status_code < 500, f"{url} as {who}: {response.status_code}"
        words = foreign_words(visible_text(response.text), locale, seeded.data, seeded.other_words)
        if words:
            found[f"{locale} {who} {url} ({response.status_code})"] = words
    return found


def _report(found: dict[str, list[str]]) -> str:
    return "text of the other language:\n" + "\n".join(f"  {page}: {', '.join(words)}" for page, words in found.items())


#: the text a person reads in the browser, after the page's scripts ran (the app editor builds its form in
#: JavaScript): every text node outside script/style, and the attributes shown or read aloud
BROWSER_TEXT = """() => {
  const parts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (parent && !parent.closest("script, style, noscript, code, pre, kbd, samp")) parts.push(node.nodeValue);
  }
  for (const el of document.querySelectorAll("[placeholder], [title], [aria-label], [alt], [label]")) {
    for (const name of ["placeholder", "title", "aria-label", "alt", "label"]) {
      if (el.getAttribute(name)) parts.push(el.getAttribute(name));
    }
  }
  for (const el of document.querySelectorAll("input[type=submit], input[type=button], input[type=reset]")) {
    parts.push(el.value);
  }
  return parts.join("\\n");
}"""


async def test_every_admin_page_is_in_one_language(perezvon_app, perezvon_client, browser):
    """Staff in a real Chromium (scripts run, so JavaScript-built forms count), a connection's "full"
    user over HTTP (the pages as served), the sign-in page anonymously; in Russian and in English."""
    seeded = await _seed(perezvon_app)
    found: dict[str, list[str]] = {}
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base:
        for locale in ("ru", "en"):
            perezvon_client.cookies.clear()
            await _set_language(perezvon_client, locale)
            anonymous = await perezvon_client.get("/login")
            words = foreign_words(visible_text(anonymous.text), locale, seeded.data, seeded.other_words)
            if words:
                found[f"{locale} anonymous /login"] = words
            # the connection's user, over HTTP
            csrf = await login(perezvon_client, seeded.member)
            export = await _export(perezvon_client, csrf, seeded.connection.id)
            urls = _urls(seeded, export.rsplit("/", 1)[1])
            assert len(urls) > 20
            found |= await _check_pages(perezvon_client, urls, locale, seeded, "full user")
            # staff, in the browser
            context = await browser.new_context(viewport={"width": 1440, "height": 900})
            try:
                page = await context.new_page()
                await page.goto(f"{base}/lang/{locale}?next=/login")
                await page.fill("#phone", seeded.staff.phone)
                await page.fill("#password", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(lambda url: "/login" not in url)
                for url in urls:
                    response = await page.goto(base + url) if not _is_download(url) else None
                    if response is None or "text/html" not in (response.headers.get("content-type") or ""):
                        continue
                    assert response.status < 500, f"{url} as staff: {response.status}"
                    await page.wait_for_load_state("load")
                    words = foreign_words(await page.evaluate(BROWSER_TEXT), locale, seeded.data, seeded.other_words)
                    if words:
                        found[f"{locale} staff {url} ({response.status})"] = words
            finally:
                await context.close()
    assert not found, _report(found)


def _is_download(url: str) -> bool:
    """Pages the browser would download instead of showing (the route table's files and JSON)."""
    return url.endswith(("/download", "/recording", "/snippet", "/status"))


async def test_the_export_is_in_the_users_language(perezvon_app, perezvon_client):
    seeded = await _seed(perezvon_app)
    found: dict[str, list[str]] = {}
    sheets = {}
    for locale in ("ru", "en"):
        perezvon_client.cookies.clear()
        await _set_language(perezvon_client, locale)
        csrf = await login(perezvon_client, seeded.staff)
        location = await _export(perezvon_client, csrf, seeded.connection.id)
        download = await perezvon_client.get(location + "/download")
        assert download.status_code == 200
        rows = list(
            openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active.iter_rows(values_only=True)
        )
        sheets[locale] = rows
        for number, row in enumerate(rows, 1):
            text = "\n".join(value for value in row if isinstance(value, str))
            words = foreign_words(text, locale, seeded.data, seeded.other_words)
            if words:
                found[f"{locale} export row {number}"] = words
    assert not found, _report(found)
    for locale, yes, no, seconds in (("ru", "Да", "Нет", "150 с"), ("en", "Yes", "No", "150 sec")):
        header = sheets[locale][0]
        cells = {value for row in sheets[locale][1:] for value in row if isinstance(value, str)}
        assert yes in cells and no in cells, locale
        for code in ("widget", "api", "direct", "organic", "yes", "no", "successful", "operator_first"):
            assert code not in cells, (locale, code)
        chains = [row[header.index("Цепочка попыток" if locale == "ru" else "Attempt chain")] for row in sheets[locale]]
        assert any(chain and f", {seconds}:" in chain for chain in chains), (locale, chains)  # units in words
    ru_cells = {value for row in sheets["ru"] for value in row if isinstance(value, str)}
    en_cells = {value for row in sheets["en"] for value in row if isinstance(value, str)}
    assert {"Виджет обратного звонка", "Прямой", "Успешный"} <= ru_cells, "apps, channels, statuses by name"
    assert {"Callback widget", "Direct", "Successful"} <= en_cells


def test_the_checker_catches_both_directions():
    """The checker itself: a Russian page with an English help text, an English page with a Russian app name."""
    html = (
        '<p>Звонки <span title="Right side">справа</span></p><script>var x = "hidden"</script>'
        '<input placeholder="Телефон"><a href="https://perezvon.example/x">Perezvon</a> utm_source 5xx'
    )
    assert foreign_words(visible_text(html), "ru", []) == ["Right", "side"]
    assert foreign_words("Calls of Виджет", "en", []) == ["Виджет"]
    assert foreign_words("Calls of Kappa", "en", ["Kappa"]) == []


async def test_cards_carry_one_short_line(perezvon_app, perezvon_client):
    """An app's or integration's card on the connection page: one short line in the user's language; the
    whole description is on its settings page."""
    from perezvon.web.admin.i18n import plugin_text

    registry = perezvon_app.host.registry
    for _, attribute in KINDS.values():
        for key, plugin in getattr(registry, attribute).items():
            for locale in ("ru", "en"):
                line = plugin_text(plugin, locale)(plugin.summary or plugin.description)
                assert len(line) <= 100, (key, locale, line)
                assert foreign_words(line, locale, []) == [], (key, locale, line)


class _Forms(HTMLParser):
    """The POST forms of a page: (action, [(name, type, value)]) for inputs, selects and textareas."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, list[tuple[str, str, str]]]] = []
        self._in_form = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and values.get("method", "").lower() == "post":
            self.forms.append((values.get("action", ""), []))
            self._in_form = True
        elif not self._in_form or "name" not in values:
            if tag == "option" and self._select is not None and self._in_form:
                fields = self.forms[-1][1]
                if not any(name == self._select for name, _, _ in fields):
                    fields.append((self._select, "select", values.get("value", "")))
            return
        elif tag == "input":
            self.forms[-1][1].append((values["name"], values.get("type", "text").lower(), values.get("value", "")))
        elif tag == "textarea":
            self.forms[-1][1].append((values["name"], "textarea", ""))
        elif tag == "select":
            self._select = values["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None


def _wrong_values(fields: list[tuple[str, str, str]]) -> dict[str, str]:
    """What a careless user sends: words where numbers, phones, addresses and times are wanted."""
    data = {}
    for name, kind, value in fields:
        if kind in ("hidden", "select"):
            data[name] = value
        elif kind in ("checkbox", "radio", "submit", "button", "file"):
            continue
        else:
            data[name] = "x!" if kind != "number" else "-999999999"
    return data


async def test_form_errors_are_in_one_language(perezvon_app, perezvon_client):
    """Every form of the pages that save (settings tabs, apps' and integrations' settings, the project,
    the profile, staff pages) sent with wrong values: the errors and flashes come in the page's language."""
    seeded = await _seed(perezvon_app)
    found: dict[str, list[str]] = {}
    posted = 0
    for locale in ("ru", "en"):
        perezvon_client.cookies.clear()
        await _set_language(perezvon_client, locale)
        await login(perezvon_client, seeded.staff)
        saving = {route.path for route in ADMIN_ROUTES if "POST" in route.methods}
        for url in _urls(seeded, "none"):
            if not any(re.fullmatch(re.sub(r"{\w+}", r"[^/]+", path), url) for path in saving):
                continue
            page = await perezvon_client.get(url)
            parser = _Forms()
            parser.feed(page.text)
            for action, fields in parser.forms:
                if (action or url) != url or not any(kind not in ("hidden", "submit") for _, kind, _ in fields):
                    continue
                response = await perezvon_client.post(url, data=_wrong_values(fields), follow_redirects=True)
                assert response.status_code < 500, f"{url}: {response.status_code}"
                posted += 1
                words = foreign_words(visible_text(response.text), locale, seeded.data, seeded.other_words)
                if words:
                    found[f"{locale} POST {url} ({response.status_code})"] = words
    assert posted > 10
    assert not found, _report(found)


def _described_texts(described: dict) -> list[str]:
    texts: list[str] = []
    for item in described.values():
        texts += [item["label"], item["help"], *item.get("labels", [])]
        texts += _described_texts(item.get("fields", {}))
    return texts


async def test_every_settings_text_of_every_plugin_is_in_one_language(perezvon_app):
    """What the visual editor may show after clicks the page test does not make: every label, help text and
    choice of every app's and integration's settings, as the editor gets them, in each language."""
    from perezvon.web.admin.i18n import plugin_text
    from perezvon.web.admin.views.editor import describe

    registry = perezvon_app.host.registry
    found: dict[str, list[str]] = {}
    for _, attribute in KINDS.values():
        for key, plugin in getattr(registry, attribute).items():
            schema = plugin.settings_schema()
            for locale in ("ru", "en"):
                texts = _described_texts(describe(schema, locale, plugin_text(plugin, locale)))
                words = foreign_words("\n".join(texts), locale, [])
                if words:
                    found[f"{locale} {key}"] = words
    assert not found, _report(found)
