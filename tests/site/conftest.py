"""A live Perezvon and a local test site for the browser tests of the site script.

One uvicorn server on a free loopback port answers both: requests for
``127.0.0.1`` go to Perezvon, requests for ``*.localhost`` (Chromium resolves
every ``*.localhost`` name to loopback) serve the pages in ``pages/`` with the
snippet of the connection named in the path, as a customer's site would. So
each test's connection has a domain of its own, and the script is cross-origin
exactly as on a real site. ``PEREZVON_TEST_LIVE_PORT`` pins its port (else a free one).
"""

from __future__ import annotations

import os
import uuid

import pytest
from sitehelpers import LiveServer

ROUND_THE_CLOCK = {str(day): ["00:00", "24:00"] for day in range(1, 8)}


@pytest.fixture(scope="session")
async def live(perezvon_app):
    # a free port unless the run is given one (engineers sharing a machine each have a range)
    server = LiveServer(perezvon_app, int(os.environ.get("PEREZVON_TEST_LIVE_PORT", "0")))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_site(perezvon_app):
    """``await make_site(widget={...}, leadgen={...}, **connection_fields)``: a connection
    on its own ``*.localhost`` domain with the given apps on (settings as stored)."""
    from perezvon.core import enablement
    from perezvon.core.models import Connection, OperatorNumber, Project

    async def make(*, widget: dict | None = None, leadgen: dict | None = None, **fields):
        project = await Project.create(name="Site script tests")
        fields.setdefault("schedule", ROUND_THE_CLOCK)
        connection = await Connection.create(
            project=project, domain=f"s{uuid.uuid4().hex[:10]}.localhost", name="Test shop", **fields
        )
        await OperatorNumber.create(connection=connection, phone="+74951234567")
        for key, settings in (("widget", widget), ("leadgen", leadgen)):
            if settings is not None:
                await enablement.enable(connection, enablement.APPLICATION, key, settings)
        return connection

    return make
