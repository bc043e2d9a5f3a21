"""`--online`: ask the OSV API (POST /v1/querybatch, GET /v1/vulns/{id}) about the pinned
dependencies too, adding advisories the offline database does not have yet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from rpops.core.errors import Unreachable
from rpops.steps.security.deps import Dependency
from rpops.steps.security.osv import AdvisoryDB, advisory_from_record

log = logging.getLogger("rpops.steps.security.online")

DEFAULT_API = "https://api.osv.dev"
BATCH = 1000  # the API's documented maximum queries per batch


def _request(
    client: httpx.Client,
    method: str,
    url: str,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None],
    **kwargs: Any,
) -> Any:
    last = ""
    for attempt in range(retries + 1):
        try:
            response = client.request(method, url, **kwargs)
            if response.status_code < 500 and response.status_code != 429:
                response.raise_for_status()
                return response.json()
            last = f"HTTP {response.status_code}"
        except httpx.HTTPStatusError as exc:
            raise Unreachable(f"OSV API {url} refused the request: HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            sleep(backoff * 2**attempt)
    raise Unreachable(
        f"OSV API {url} unreachable after {retries + 1} attempts ({last}); "
        "run without --online to use the offline database only"
    )


def query(
    db: AdvisoryDB,
    dependencies: list[Dependency],
    api_url: str = DEFAULT_API,
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[tuple[str, str], set[str]]:
    """Ids the API reports per (name, version); records unknown offline are added to `db`."""
    pinned = sorted({(d.name, d.version) for d in dependencies if d.version})
    hits: dict[tuple[str, str], set[str]] = {}
    base = api_url.rstrip("/")
    with httpx.Client(timeout=timeout, headers={"User-Agent": "rpops-security-scan"}) as client:
        pending: list[tuple[tuple[str, str], str | None]] = [(key, None) for key in pinned]
        while pending:
            batch, pending = pending[:BATCH], pending[BATCH:]
            queries = []
            for (name, version), token in batch:
                q: dict[str, Any] = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
                if token:
                    q["page_token"] = token
                queries.append(q)
            data = _request(
                client, "POST", f"{base}/v1/querybatch", retries, backoff, sleep, json={"queries": queries}
            )
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list) or len(results) != len(batch):
                raise Unreachable(f"OSV API {base}/v1/querybatch answered an unexpected document")
            for (key, _), item in zip(batch, results, strict=True):
                ids = {
                    str(v["id"]) for v in (item or {}).get("vulns") or [] if isinstance(v, dict) and "id" in v
                }
                hits.setdefault(key, set()).update(ids)
                token = (item or {}).get("next_page_token")
                if token:
                    pending.append((key, str(token)))
        for (name, _version), ids in hits.items():
            known = {i for a in db.advisories_for(name) for i in a.ids}
            for vuln_id in sorted(ids - known):
                record = _request(client, "GET", f"{base}/v1/vulns/{vuln_id}", retries, backoff, sleep)
                advisory = advisory_from_record(record, name) if isinstance(record, dict) else None
                if advisory is not None:
                    db.add(advisory)
                    known |= advisory.ids
    log.info(
        "OSV API: %d package versions queried, %d advisory ids reported",
        len(pinned),
        sum(len(v) for v in hits.values()),
    )
    return hits
