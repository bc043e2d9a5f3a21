"""The workload's OpenAPI 3.1 document, written out by hand (it is the contract, not a by-product)."""

from __future__ import annotations

from typing import Any


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = _json(_ref("Error"), "Refused; `error` says why.")

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Health": {
        "type": "object",
        "required": ["status", "version", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
            "version": {"type": "string"},
            "checks": {
                "type": "object",
                "required": ["security", "performance"],
                "properties": {
                    "security": {"type": "boolean",
                                 "description": "The safe evaluator computes 1 + 1 = 2."},
                    "performance": {"type": "boolean",
                                    "description": "Monitoring runs; figures are readable."},
                },
            },
            "uptime_s": {"type": "number"},
            "reason": {"type": "string"},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["ready", "version"],
        "properties": {"ready": {"type": "boolean"}, "version": {"type": "string"},
                       "reason": {"type": "string"}},
    },
    "PerformanceStatus": {
        "type": "object",
        "required": ["monitoring_active", "cpu_percent", "memory_mb", "uptime_s", "request_rate"],
        "properties": {
            "monitoring_active": {"type": "boolean"},
            "cpu_percent": {"type": "number", "description": "This process, percent of one core."},
            "memory_mb": {"type": "number", "description": "Resident memory."},
            "uptime_s": {"type": "number"},
            "request_rate": {"type": "number", "description": "Requests per second, last sample interval."},
        },
    },
    "RouteSummary": {
        "type": "object",
        "properties": {k: {"type": "number"} for k in
                       ("count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")},
    },
    "PerformanceMetrics": {
        "type": "object",
        "properties": {
            "version": {"type": "string"},
            "monitoring_active": {"type": "boolean"},
            "uptime_s": {"type": "number"},
            "cpu_percent": {"type": "number"},
            "memory_mb": {"type": "number"},
            "request_rate": {"type": "number"},
            "requests_total": {"type": "integer"},
            "security_blocked_operations": {"type": "integer"},
            "sampled_age_s": {"type": "number"},
            "routes": {"type": "object", "additionalProperties": _ref("RouteSummary")},
        },
    },
    "SecureEvalRequest": {
        "type": "object",
        "required": ["expression"],
        "additionalProperties": False,
        "properties": {
            "expression": {"type": "string",
                           "description": "A rules expression, e.g. `cpu > 0.8 and replicas < 10`."},
            "context": {"type": "object", "description": "Names the expression may read."},
        },
    },
    "SecureEvalResult": {"type": "object", "required": ["result"], "properties": {"result": {}}},
    "Faults": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "latency_ms": {"type": "number", "minimum": 0, "maximum": 60000},
            "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "unhealthy": {"type": "boolean"},
            "not_ready": {"type": "boolean"},
            "cpu_burn": {"type": "number", "minimum": 0, "maximum": 1,
                         "description": "Share of one core burnt by a background thread."},
            "memory_growth_mb_per_s": {
                "type": "number", "minimum": 0, "maximum": 1024,
                "description": "Memory allocated and held per second (capped at 1 GiB)."},
        },
    },
    "FaultState": {
        "type": "object",
        "properties": {"faults": _ref("Faults"), "active": {"type": "boolean"},
                       "effects": {"type": "object"}},
    },
}


def build_openapi(version: str, admin_enabled: bool) -> dict[str, Any]:
    admin_note = "" if admin_enabled else " Disabled in this instance (no --admin-token): answers 404."
    admin_responses = {"200": _json(_ref("FaultState"), "The faults now in force."),
                       "401": _ERROR, "404": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Research Platform reference workload", "version": version,
                 "description": "The contract the rpops pipelines check, "
                                "with token-protected fault injection."},
        "paths": {
            "/health": {"get": {"summary": "Health with security and performance checks",
                                "responses": {"200": _json(_ref("Health"), "Healthy."),
                                              "503": _json(_ref("Health"), "Unhealthy.")}}},
            "/ready": {"get": {"summary": "Readiness",
                               "responses": {"200": _json(_ref("Ready"), "Ready."),
                                             "503": _json(_ref("Ready"), "Not ready.")}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text exposition format.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/performance/metrics": {"get": {
                "summary": "Performance figures and per-route latency summary",
                "responses": {"200": _json(_ref("PerformanceMetrics"), "Figures.")}}},
            "/api/secure-eval": {"post": {
                "summary": "Evaluate an expression with the safe evaluator",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("SecureEvalRequest")}}},
                "responses": {"200": _json(_ref("SecureEvalResult"), "The result (at most 1 MiB)."),
                              "400": _ERROR, "413": {"description": "Body over 64 KiB."},
                              "429": {"description": "Every evaluator is busy; retry after Retry-After."}}}},
            "/api/performance/status": {"get": {
                "summary": "Monitoring status (cached psutil figures)",
                "responses": {"200": _json(_ref("PerformanceStatus"), "Status.")}}},
            "/admin/faults": {
                "get": {"summary": "Show the injected faults." + admin_note, "security": [{"bearer": []}],
                        "responses": admin_responses},
                "post": {"summary": "Merge faults into the current set." + admin_note,
                         "security": [{"bearer": []}],
                         "requestBody": {"required": True,
                                         "content": {"application/json": {"schema": _ref("Faults")}}},
                         "responses": {**admin_responses, "400": _ERROR}},
                "delete": {"summary": "Clear every fault." + admin_note, "security": [{"bearer": []}],
                           "responses": admin_responses},
            },
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1 document."}}}},
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
