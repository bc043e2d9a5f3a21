"""The reference Research Platform workload: the HTTP contract the pipelines check, served for real.

    app.py      the ASGI app (Starlette) and its fault/metrics middleware
    faults.py   the fault set, its validation, and the CPU/memory effects
    metrics.py  Prometheus metrics and the cached process monitor
    openapi.py  the OpenAPI document
    cli.py      `rpops workload serve`
    testing.py  `start_workload(...)`: a real workload subprocess for tests

Heavy imports (starlette, uvicorn, prometheus_client) live in the submodules, not here.
"""
