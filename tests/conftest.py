"""The fixtures come from the ``perezvon`` pytest plugin (core/testing.py)."""

import itertools

import pytest

_numbers = itertools.count(1000000)


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
