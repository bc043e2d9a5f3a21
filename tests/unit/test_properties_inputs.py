"""Properties (Hypothesis) of the parsing of outside input: the events API's payloads, `{{...}}`
substitution against a reference of fasttemplate's scan (which Argo's template.Replace uses),
and the command line's numbers and URLs."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from rpops.core.errors import UsageError
from rpops.core.parsers import NestingError, depth_exceeds, finite_float, http_url, loads_json
from rpops.core.settings import add_arguments, from_args, setting
from rpops.local.expr.eventexpr import ExprError
from rpops.local.expr.substitute import Unresolved, render, tags
from rpops.local.server.bindings import event_env, load_bindings, match
from rpops.local.server.events import PayloadError, check_alertmanager

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tests" / "e2e"))
from property_strategies import FAST, JSON  # noqa: E402
from test_events_bindings import BINDING, catalog_with  # noqa: E402
from test_events_serve import ALERTS_BINDING  # noqa: E402

# --- the events API's payloads ---------------------------------------------------------------

BINDINGS = load_bindings(catalog_with(BINDING, ALERTS_BINDING), "argo")
ALERT_KEYS = ["version", "status", "receiver", "groupKey", "externalURL", "groupLabels", "commonLabels",
              "commonAnnotations", "truncatedAlerts", "alerts"]


def mutated_alert_payloads() -> st.SearchStrategy[Any]:
    """Valid Alertmanager payloads with one field replaced by random JSON (or removed)."""

    def mutate(args: tuple[str, Any, bool]) -> Any:
        key, value, drop = args
        payload = _valid_payload()
        if drop:
            payload.pop(key, None)
        else:
            payload[key] = value
        return payload

    return st.tuples(st.sampled_from(ALERT_KEYS), JSON, st.booleans()).map(mutate)


def _valid_payload() -> dict[str, Any]:
    return {
        "version": "4", "status": "firing", "receiver": "argo", "groupKey": "{}:{alertname=\"HighCpu\"}",
        "groupLabels": {"alertname": "HighCpu"}, "commonLabels": {"alertname": "HighCpu"},
        "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "HighCpu"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "0123456789abcdef"}],
    }


def test_the_valid_payload_is_valid() -> None:
    assert check_alertmanager(_valid_payload()).alerts[0].fingerprint == "0123456789abcdef"


@FAST
@given(st.one_of(JSON, mutated_alert_payloads()))
def test_alertmanager_payloads_are_accepted_or_refused_by_name(payload: Any) -> None:
    try:
        group = check_alertmanager(payload)
    except PayloadError as exc:
        assert str(exc)
    else:
        assert group.alerts and all(a.labels.get("alertname") for a in group.alerts)


@FAST
@given(st.one_of(JSON, mutated_alert_payloads()), st.sampled_from(["test", "alertmanager", "other"]))
def test_bindings_match_any_payload_or_refuse_it_by_name(payload: Any, discriminator: str) -> None:
    env = event_env("argo", discriminator, payload, {"X-Sender": "t"})
    try:
        submissions = match(BINDINGS, env)
    except ExprError as exc:
        assert "binding " in str(exc)
    else:
        for sub in submissions:
            assert all(isinstance(v, str) for v in sub.parameters.values())


@FAST
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_request_bodies_parse_or_are_refused(raw: bytes) -> None:
    try:
        value = loads_json(raw)
    except ValueError as exc:  # NestingError is one
        assert str(exc)
    else:
        assert not depth_exceeds(value, 100)


@FAST
@given(st.integers(1, 3000), st.sampled_from(["[", '{"a":']))
def test_nesting_is_refused_past_the_limit_and_never_recurses(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = opener * depth + "0" + closer * depth
    if depth > 100:
        with pytest.raises(NestingError):
            loads_json(raw)
    else:
        loads_json(raw)


# --- {{...}} substitution ----------------------------------------------------------------------

def fasttemplate(text: str, values: dict[str, str]) -> str:
    """The reference: valyala/fasttemplate's ExecuteFunc with Argo's tag function (trim the tag,
    its value, or the tag as written when unknown)."""
    out, s = [], text
    while True:
        n = s.find("{{")
        if n < 0:
            break
        out.append(s[:n])
        s = s[n + 2:]
        n = s.find("}}")
        if n < 0:
            out.append("{{" + s)
            return "".join(out)
        tag = s[:n]
        out.append(values.get(tag.strip(), "{{" + tag + "}}"))
        s = s[n + 2:]
    out.append(s)
    return "".join(out)


TEMPLATE_TEXT = st.text(alphabet="{}ab .x-", max_size=40)
VALUES = st.dictionaries(st.sampled_from(["a", "b", "x.a", "ab", ""]), st.text(alphabet="{}ab", max_size=6),
                         max_size=4)


@FAST
@given(TEMPLATE_TEXT, VALUES)
def test_render_matches_fasttemplate(text: str, values: dict[str, str]) -> None:
    assert render(text, values, strict=False) == fasttemplate(text, values)


@FAST
@given(TEMPLATE_TEXT, VALUES)
def test_strict_render_resolves_every_tag_or_names_the_missing_one(text: str, values: dict[str, str]) -> None:
    try:
        out = render(text, values)
    except Unresolved as exc:
        assert exc.tag in tags(text) and exc.tag not in values
    else:
        assert all(t in values for t in tags(text))
        assert out == fasttemplate(text, values)


@FAST
@given(st.text(alphabet="ab ", max_size=10), st.text(alphabet="{}ab", max_size=10))
def test_a_substituted_value_is_never_scanned_again(name: str, value: str) -> None:
    assume(name.strip())
    assert render("<{{" + name + "}}>", {name.strip(): value}) == f"<{value}>"


# --- command line numbers and URLs --------------------------------------------------------------

@FAST
@given(st.floats())
def test_finite_float_refuses_exactly_nan_and_infinity(value: float) -> None:
    if math.isfinite(value):
        assert finite_float(repr(value), "--x") == value
    else:
        with pytest.raises(UsageError, match="--x"):
            finite_float(repr(value), "--x")


@FAST
@given(st.text(max_size=30))
def test_finite_float_takes_any_text(text: str) -> None:
    try:
        value = finite_float(text, "--x")
    except UsageError as exc:
        assert str(exc).startswith("--x")
    else:
        assert math.isfinite(value)


@dataclass(frozen=True)
class _Numbers:
    seconds: float = setting(1.0, help="seconds")
    count: int = setting(1, help="count")


class _Exit(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise _Exit(message)


@FAST
@given(st.one_of(st.floats().map(repr), st.text(max_size=12)), st.text(max_size=8))
def test_settings_flags_give_finite_numbers_or_a_usage_error(seconds: str, count: str) -> None:
    parser = _Parser()
    add_arguments(parser, _Numbers)
    try:
        parsed = from_args(_Numbers, parser.parse_args([f"--seconds={seconds}", f"--count={count}"]))
    except _Exit as exc:
        assert "--seconds" in str(exc) or "--count" in str(exc)
    else:
        assert math.isfinite(parsed.seconds) and isinstance(parsed.count, int)


URL_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
              st.sampled_from(["http", "https", "ftp", "", "HTTP"]),
              st.sampled_from(["127.0.0.1", "[::1]", "[::1", "[zz]", "example.com", "", "a b", "[", "ü.de"]),
              st.sampled_from(["", ":80", ":0", ":99999", ":-1", ":x", ":"]),
              st.sampled_from(["", "/", "/p", "?q=1", "#f", "/a b"])),
)


@FAST
@given(URL_TEXT)
def test_urls_are_accepted_or_refused_by_name(url: str) -> None:
    try:
        checked = http_url(url, "--url")
    except UsageError as exc:
        assert str(exc).startswith("--url")
    else:
        from urllib.parse import urlsplit

        parts = urlsplit(checked)
        assert parts.scheme in ("http", "https") and parts.hostname
        assert not parts.query and not parts.fragment and not checked.endswith("/")
        assert parts.port is None or 0 < parts.port < 65536


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b"[Infinity]", b"-Infinity", b'{"a": [1, -Infinity]}'])
def test_nan_and_infinity_are_not_json(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        loads_json(raw)
