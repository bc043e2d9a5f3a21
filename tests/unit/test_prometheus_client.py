"""rpops.clients.prometheus against pytest-httpserver serving Prometheus HTTP API answers."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from rpops.clients.prometheus import AsyncPrometheus, Outcome, Prometheus, QueryResult, parse_response
from werkzeug import Request, Response

VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"instance": "10.0.0.1:8000", "job": "research-platform"},
             "value": [1732780800.123, "87.5"]},
            {"metric": {"instance": "10.0.0.2:8000", "job": "research-platform"},
             "value": [1732780800.123, "42"]},
        ],
    },
}
MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [
            {"metric": {"__name__": "research_platform_cpu_usage_percent", "instance": "a"},
             "values": [[1732780800, "10"], [1732780815, "20"], [1732780830, "NaN"]]},
            {"metric": {"__name__": "research_platform_cpu_usage_percent", "instance": "b"},
             "values": [[1732780800, "30"], [1732780815, "+Inf"]]},
        ],
    },
}
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}
NAN = {"status": "success",
       "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "NaN"]}]}}
SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1732780800.5, "3.25"]}}
BAD_DATA = {"status": "error", "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:8: parse error: unexpected "}"'}
EXECUTION = {"status": "error", "errorType": "execution",
             "error": "query processing would load too many samples"}
WITH_WARNINGS = {"status": "success", "warnings": ["PromQL info: metric might not be a counter"],
                 "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.25"]}]}}


def serve(httpserver: HTTPServer, doc: object, status: int = 200, path: str = "/api/v1/query") -> None:
    httpserver.expect_request(path, method="POST").respond_with_json(doc, status=status)


def query(httpserver: HTTPServer, expr: str = "up") -> QueryResult:
    with Prometheus(httpserver.url_for("/"), timeout=2.0, retries=0) as prom:
        return prom.query(expr)


def test_vector_is_parsed_with_labels_and_values(httpserver: HTTPServer) -> None:
    serve(httpserver, VECTOR)
    result = query(httpserver, "max by (instance) (research_platform_cpu_usage_percent)")
    assert result.outcome is Outcome.OK and result.ok
    assert result.result_type == "vector"
    assert [s.value for s in result.samples] == [87.5, 42.0]
    assert result.samples[0].labels == {"instance": "10.0.0.1:8000", "job": "research-platform"}
    assert result.samples[0].timestamp == pytest.approx(1732780800.123)
    assert result.max_value() == 87.5
    assert result.value() is None  # two samples: ambiguous, the caller must aggregate
    assert result.http_status == 200


def test_the_query_is_posted_as_a_form(httpserver: HTTPServer) -> None:
    serve(httpserver, SCALAR)
    with Prometheus(httpserver.url_for("/"), timeout=3.0, retries=0) as prom:
        result = prom.query('sum(rate(x{a="b"}[5m]))', at=1732780800.5)
    assert result.value() == 3.25
    request, _ = httpserver.log[0]
    form = parse_qs(request.get_data(as_text=True))
    assert form["query"] == ['sum(rate(x{a="b"}[5m]))']
    assert form["time"] == ["1732780800.500"]
    assert form["timeout"] == ["3s"]


def test_matrix_from_a_range_query(httpserver: HTTPServer) -> None:
    serve(httpserver, MATRIX, path="/api/v1/query_range")
    with Prometheus(httpserver.url_for("/"), retries=0) as prom:
        result = prom.query_range("research_platform_cpu_usage_percent", start=1732780800, end=1732780830,
                                  step=15)
    assert result.ok and result.result_type == "matrix"
    assert len(result.series) == 2
    assert result.series[0].points[:2] == ((1732780800.0, 10.0), (1732780815.0, 20.0))
    assert math.isnan(result.series[0].points[2][1])
    assert result.values() == [10.0, 20.0, 30.0, math.inf]  # NaN left out
    form = parse_qs(httpserver.log[0][0].get_data(as_text=True))
    assert (form["start"], form["end"], form["step"]) == (["1732780800.000"], ["1732780830.000"], ["15"])


def test_range_query_refuses_a_bad_step() -> None:
    with Prometheus("http://127.0.0.1:9", retries=0) as prom, pytest.raises(ValueError):
        prom.query_range("up", start=10, end=20, step=0)


def test_empty_result_is_an_outcome_not_an_index_error(httpserver: HTTPServer) -> None:
    serve(httpserver, EMPTY)
    result = query(httpserver)
    assert result.outcome is Outcome.EMPTY
    assert result.value() is None and result.max_value() is None


def test_nan_result(httpserver: HTTPServer) -> None:
    serve(httpserver, NAN)
    result = query(httpserver)
    assert result.outcome is Outcome.NAN
    assert result.value() is None


def test_status_error_bad_data(httpserver: HTTPServer) -> None:
    serve(httpserver, BAD_DATA, status=400)
    result = query(httpserver, "sum(")
    assert result.outcome is Outcome.ERROR
    assert result.error_type == "bad_data"
    assert "parse error" in result.error
    assert result.http_status == 400


def test_status_error_execution(httpserver: HTTPServer) -> None:
    serve(httpserver, EXECUTION, status=422)
    result = query(httpserver)
    assert result.outcome is Outcome.ERROR and result.error_type == "execution"


def test_http_error_without_api_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/query").respond_with_data("upstream connect error", status=503)
    result = query(httpserver)
    assert result.outcome is Outcome.HTTP_ERROR
    assert result.http_status == 503
    assert "503" in result.error
    assert len(httpserver.log) == 1  # an HTTP status is never retried


def test_malformed_json_is_invalid(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/query").respond_with_data('{"status": "succ', status=200)
    assert query(httpserver).outcome is Outcome.INVALID


def test_unexpected_shape_is_invalid(httpserver: HTTPServer) -> None:
    serve(httpserver, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}})
    result = query(httpserver)
    assert result.outcome is Outcome.INVALID
    assert "unexpected data shape" in result.error


def test_warnings_are_kept(httpserver: HTTPServer) -> None:
    serve(httpserver, WITH_WARNINGS)
    result = query(httpserver)
    assert result.ok and result.value() == 0.25
    assert result.warnings == ("PromQL info: metric might not be a counter",)


def test_unreachable_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Prometheus(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.01) as prom:
        result = prom.query("up")
    assert result.outcome is Outcome.UNREACHABLE
    assert result.attempts == 3


def test_timeout_is_an_outcome(httpserver: HTTPServer) -> None:
    import time

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(json.dumps(SCALAR), content_type="application/json")

    httpserver.expect_request("/api/v1/query").respond_with_handler(slow)
    with Prometheus(httpserver.url_for("/"), timeout=0.1, retries=2) as prom:
        result = prom.query("up")
    assert result.outcome is Outcome.TIMEOUT
    assert result.attempts == 1


def test_async_client_shares_the_parsing(httpserver: HTTPServer) -> None:
    serve(httpserver, VECTOR)
    serve(httpserver, EMPTY, path="/api/v1/query_range")

    async def scenario() -> tuple[QueryResult, QueryResult]:
        async with AsyncPrometheus(httpserver.url_for("/"), timeout=2.0, retries=0) as prom:
            return await asyncio.gather(prom.query("a"), prom.query_range("b", start=0, end=60, step=15))

    instant, ranged = asyncio.run(scenario())
    assert instant.ok and instant.max_value() == 87.5
    assert ranged.outcome is Outcome.EMPTY


def test_async_client_unreachable_and_bad_data(httpserver: HTTPServer) -> None:
    serve(httpserver, BAD_DATA, status=400)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> tuple[QueryResult, QueryResult]:
        async with AsyncPrometheus(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01) as down, \
                AsyncPrometheus(httpserver.url_for("/"), retries=1) as up:
            return await down.query("up"), await up.query("sum(")

    unreachable, refused = asyncio.run(scenario())
    assert unreachable.outcome is Outcome.UNREACHABLE and unreachable.attempts == 2
    assert refused.outcome is Outcome.ERROR and refused.error_type == "bad_data"


def test_parse_response_summary_is_json_ready() -> None:
    result = parse_response("up", 200, json.dumps(VECTOR).encode())
    summary = result.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["outcome"] == "ok" and summary["value"] == 87.5 and summary["samples"] == 2
