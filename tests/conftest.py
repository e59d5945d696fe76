"""The fixtures come from the ``perezvon`` pytest plugin (core/testing.py)."""

import ipaddress
import itertools
import logging
import socket

import pytest

_numbers = itertools.count(1000000)


def _names_this_machine(host: str) -> bool:
    if host in ("localhost", socket.gethostname()) or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%")[0])  # an address needs no lookup (and no name leaves the machine)
    except ValueError:
        return False
    return True


#: the names a test tried to look up: listed at the end of the run (a service some test left switched on)
_refused_lookups: set[str] = set()


def pytest_terminal_summary(terminalreporter):
    if _refused_lookups:
        terminalreporter.write_line(
            "lookups refused (tests do not leave this machine): " + ", ".join(sorted(_refused_lookups))
        )


@pytest.fixture(scope="session", autouse=True)
def lookups_stay_on_this_machine():
    """Tests never reach a real service: looking up any name but this machine's fails at once.

    Why: a connection switched on with a service's real address (Calltouch's own API, say) leaves
    its pushes queued, and a later test's worker runs them. Where the resolver takes seconds to say
    no (CI's may), every such push held that test's workers for as long, until one timed out; and on
    a machine with network the push would really go out. Refused here, a lookup fails as it does with
    no network at all, in no time, and the log names what was refused.
    """
    resolve = socket.getaddrinfo
    log = logging.getLogger("tests.lookups")

    def on_this_machine_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or _names_this_machine(name):
            return resolve(host, *args, **kwargs)
        log.warning("refused a lookup of %s: tests do not leave this machine", name)
        _refused_lookups.add(name)
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: tests do not leave this machine")

    socket.getaddrinfo = on_this_machine_only
    try:
        yield
    finally:
        socket.getaddrinfo = resolve


@pytest.fixture
def new_phone():
    """A distinct valid Russian mobile number each call, so duplicates never collide by accident."""

    def make(suffix: str = "") -> str:
        body = f"{next(_numbers):07d}"
        # the simulator's rules in tests/plugins.toml (busy, no such number ...) match endings of "0" and
        # three digits: a plain number never has one, however many numbers the tests before it took
        while not suffix and body[-4] == "0":
            body = f"{next(_numbers):07d}"
        if suffix:
            body = body[: 7 - len(suffix)] + suffix
        return f"+7916{body}"

    return make


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
async def browser():
    """Debian's Chromium driven by playwright; one browser per test session, a context per test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser):
    """A fresh page in its own context (no cookies or storage shared between tests)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield await context.new_page()
    finally:
        await context.close()
