"""What `rpops validate` is told: the service's URL and the limits its checks hold it to."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rpops.core.errors import UsageError
from rpops.core.parsers import http_url
from rpops.core.settings import setting


@dataclass(frozen=True)
class ValidateSettings:
    url: str = setting(help="Base URL of the service to validate, e.g. "
                            "http://research-platform.research-platform.svc:8000", parameter=True)
    max_response_ms: float = setting(1000.0, help="Slowest acceptable response, in milliseconds",
                                     parameter=True)
    timeout: float = setting(5.0, help="Seconds allowed for each request, connect to last byte",
                             parameter=True)
    retries: int = setting(2, help="Retries of a request that could not connect (exponential backoff)")
    output: str = setting("table", help="Result format on stdout", choices=("table", "json"))


def check(s: ValidateSettings) -> ValidateSettings:
    """The settings with the URL normalised; UsageError naming the flag when one is out of range."""
    url = http_url(s.url, "--url")
    if math.isnan(s.max_response_ms) or s.max_response_ms <= 0:
        raise UsageError(f"--max-response-ms {s.max_response_ms:g}: must be a positive number of "
                         "milliseconds")
    if math.isnan(s.timeout) or not 0 < s.timeout <= 600:
        raise UsageError(f"--timeout {s.timeout:g}: must be between 0 and 600 seconds")
    if not 0 <= s.retries <= 10:
        raise UsageError(f"--retries {s.retries}: must be between 0 and 10")
    return replace(s, url=url)
