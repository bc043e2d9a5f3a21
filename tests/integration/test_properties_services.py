"""Properties (Hypothesis) of the two servers, each a real process on 127.0.0.1: random
expressions and contexts to `/api/secure-eval`, random bodies and content types to
`rpops local serve`'s events API. Never a 5xx, never an answer over 1 MiB or past 5 s, no text
showing internals, and /health answering within 2 s after every example."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rpops.workload.testing import RunningWorkload, start_workload

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from fixtures import RunningServe, start_serve  # noqa: E402
from property_strategies import CONTEXT, EXPRESSIONS, INTERNALS, JSON, OVER_HTTP  # noqa: E402
from test_events_bindings import BINDING  # noqa: E402
from test_events_serve import write_manifests  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def workload() -> Iterator[RunningWorkload]:
    with start_workload(version="v-props") as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        yield client


@OVER_HTTP
@given(EXPRESSIONS, CONTEXT)
def test_secure_eval_answers_every_expression_within_its_limits(
        workload: RunningWorkload, http: httpx.Client, expression: str, context: dict[str, Any]) -> None:
    started = time.monotonic()
    payload = {"expression": expression, "context": context}
    response = http.post(f"{workload.url}/api/secure-eval", json=payload)
    elapsed = time.monotonic() - started
    assert response.status_code in (200, 400, 429), response.text
    assert len(response.content) <= MIB and elapsed < 5.0
    body = response.json()
    assert set(body) == ({"result"} if response.status_code == 200 else {"error"})
    assert not INTERNALS.search(response.text), response.text
    started = time.monotonic()
    assert http.get(f"{workload.url}/health").status_code == 200
    assert time.monotonic() - started < 2.0


@OVER_HTTP
@given(st.one_of(st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode())))
def test_secure_eval_never_fails_on_a_body(workload: RunningWorkload, http: httpx.Client, raw: bytes) -> None:
    response = http.post(f"{workload.url}/api/secure-eval", content=raw,
                         headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 429), response.text
    assert not INTERNALS.search(response.text)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServe]:
    tmp = tmp_path_factory.mktemp("props")
    manifests = write_manifests(tmp / "manifests", BINDING)
    running = start_serve(manifests, tmp / "serve", extra=("--rate-limit", "100000/min"))
    try:
        yield running
    finally:
        running.stop()


@OVER_HTTP
@given(st.one_of(st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode())),
       st.sampled_from(["alertmanager", "other"]),
       st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]))
def test_events_api_answers_every_body_without_a_5xx(serve: RunningServe, raw: bytes, discriminator: str,
                                                     content_type: str) -> None:
    headers = {"Authorization": f"Bearer {serve.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = serve._client.post(f"{serve.url}/api/v1/events/argo/{discriminator}", content=raw,
                                  headers=headers)
    assert response.status_code in (200, 400, 415, 422), response.text
    if response.status_code != 200:
        assert set(response.json()) == {"code", "message"}
        assert not INTERNALS.search(response.text), response.text
    if not content_type.startswith("application/json"):
        assert response.status_code == 415
    assert "Traceback" not in serve.logs()
