"""The fixtures come from the ``perezvon`` pytest plugin (core/testing.py)."""
import itertools

import pytest

_numbers = itertools.count(1000000)


@pytest.fixture
def new_phone():
    """A distinct valid Russian mobile number each call, so duplicates never collide by accident."""
    def make(suffix: str = "") -> str:
        body = f"{next(_numbers):07d}"
        if suffix:
            body = body[: 7 - len(suffix)] + suffix
        return f"+7916{body}"
    return make
