"""The OpenAPI document agrees with the live API (issue 13, item 10).

schemathesis generates requests from ``/openapi.json`` -- valid ones and, for the
lead API, invalid ones -- and sends them to the app served by uvicorn on a real
port. Every answer must be documented (status, content type, body schema), no
answer may be a 5xx, and a request the document says is invalid must be refused.
The run is bounded (a few dozen examples per operation), so it takes seconds.
"""

from __future__ import annotations

import asyncio
import copy

import httpx
from live_helpers import live_server
from test_admin_helpers import make_user

from perezvon.core.access import create_api_key
from perezvon.core.call_filters import STATUSES
from perezvon.core.models import DisplayStatus
from perezvon.web.app import create_app

EXAMPLES_PER_OPERATION = 30


def with_real_values(spec: dict, token: str) -> dict:
    """The document, with the site token and a few valid numbers offered to the generator, so that
    generated leads get past the token check and some are stored (201) or duplicates (200)."""
    spec = copy.deepcopy(spec)
    lead = spec["components"]["schemas"]["Lead"]["properties"]
    lead["token"] = {"type": "string", "enum": [token]}
    lead["phone"] = {"type": "string", "enum": ["+79161234567", "8 (916) 765-43-21", "+7 916 000 11 22"]}
    for parameter in spec["paths"]["/api/v1/calls/{call_id}/state"]["get"]["parameters"]:
        if parameter["name"] == "token":
            parameter["schema"] = {"type": "string", "enum": [token, "x" * 65]}
    return spec


def run_schemathesis(spec: dict, base_url: str, headers: dict[str, str]) -> tuple[list[str], list[tuple[str, int]]]:
    """Every operation, a bounded number of generated cases each; returns the failures found and the
    (path, status) of every answer."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    seen: list[tuple[str, int]] = []

    def run_cases(strategy, case_checks) -> None:
        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            try:
                response = case.call_and_validate(base_url=base_url, headers=headers, checks=case_checks)
                seen.append((case.operation.path, response.status_code))
            except Exception as exc:  # collected, so one run reports every operation's failures
                failures.append(f"{case.operation.method.upper()} {case.operation.path}: {exc}")

        check()

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.path == "/api/v1/leads":
            modes.append(GenerationMode.NEGATIVE)
        # /healthz answers a documented 503 by design when no worker has reported (none runs here)
        operation_checks = (
            [c for c in checks if c is not not_a_server_error] if operation.path == "/healthz" else checks
        )
        for mode in modes:
            extra = [negative_data_rejection] if mode == GenerationMode.NEGATIVE else []
            run_cases(operation.as_strategy(generation_mode=mode), operation_checks + extra)
    return failures, seen


async def test_the_live_api_matches_its_openapi_document(perezvon_app, perezvon_site):
    _, key = await create_api_key(await make_user(staff=True))
    async with live_server(create_app(perezvon_app, manage_lifecycle=False)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            spec = (await client.get("/openapi.json")).json()
        # schemathesis is synchronous (requests): it runs in a thread while this loop serves it
        failures, seen = await asyncio.to_thread(
            run_schemathesis,
            with_real_values(spec, perezvon_site.token),
            base_url,
            {"Authorization": f"Bearer {key}"},
        )
    assert failures == [], "\n\n".join(failures[:5])
    # the generated requests got past the checks into the real work, not only refusals
    statuses = {path: {status for p, status in seen if p == path} for path, _ in seen}
    assert {201, 422} <= statuses["/api/v1/leads"] and 200 in statuses["/api/v1/calls"]


async def test_the_document_names_every_status_and_nested_errors(perezvon_client, perezvon_site):
    spec = (await perezvon_client.get("/openapi.json")).json()
    state = spec["paths"]["/api/v1/calls/{call_id}/state"]["get"]["responses"]["200"]
    enum = state["content"]["application/json"]["schema"]["properties"]["status"]["enum"]
    every = {value for name, value in vars(DisplayStatus).items() if name.isupper()}
    assert set(enum) == every == set(STATUSES) and "notified" in enum
    lead_responses = spec["paths"]["/api/v1/leads"]["post"]["responses"]
    assert {"200", "201", "400", "403", "413", "415", "422", "429", "503"} <= set(lead_responses)
    assert "call_id" not in lead_responses["200"]["content"]["application/json"]["schema"]["properties"]
    lead = spec["components"]["schemas"]["Lead"]["properties"]
    assert lead["consent"]["type"] == "boolean" and "true" in lead["consent"]["description"]
    assert "valid" in lead["phone"]["description"]
    # a nested field's errors come back nested, and the document says so
    nested = await perezvon_client.post(
        "/api/v1/leads",
        json={"token": perezvon_site.token, "phone": "+79161234567", "consent": True, "utm": {"source": "x" * 300}},
    )
    assert nested.status_code == 422 and isinstance(nested.json()["errors"]["utm"]["source"], list)
    field_errors = spec["components"]["schemas"]["FieldErrors"]["additionalProperties"]["anyOf"]
    assert {"$ref": "#/components/schemas/FieldErrors"} in field_errors
    filters = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/calls"]["get"]["parameters"]}
    assert filters["connection"]["items"]["maximum"] == 2**31 - 1
    assert filters["date_to"]["format"] == "date" and filters["tz"]["minLength"] == 1
