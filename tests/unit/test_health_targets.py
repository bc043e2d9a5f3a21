"""`--target` parsing and the other input checks of health-check (all before any probe)."""

from __future__ import annotations

import pytest
from rpops.classify import Target
from rpops.errors import UsageError
from rpops.health import check_url, parse_targets


def test_repeated_flags_and_comma_separated_pairs() -> None:
    targets = parse_targets([
        "us-east=http://10.0.0.1:8000/",
        "eu-west=http://10.0.1.1:8000, ap-south=https://ap.example.internal/platform",
    ])
    assert targets == [
        Target("us-east", "http://10.0.0.1:8000"),
        Target("eu-west", "http://10.0.1.1:8000"),
        Target("ap-south", "https://ap.example.internal/platform"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://10.0.0.1:8000", "is not NAME=URL"),
        ("=http://10.0.0.1:8000", "is not NAME=URL"),
        ("a=", "is not NAME=URL"),
        ("a=http://x:1,", "is not NAME=URL"),
        ("a b=http://x:1", "name 'a b'"),
        ("-a=http://x:1", "name '-a'"),
        ("a=ftp://x/", "not an http(s) URL"),
        ("a=10.0.0.1:8000", "not an http(s) URL"),
        ("a=http://", "not an http(s) URL"),
        ("a=http://x:99999", "not an http(s) URL"),
        ("a=http://x:1/health?x=1", "query or fragment"),
        ("a=http://x:1,a=http://y:1", "given twice"),
    ],
)
def test_malformed_targets_name_the_flag_and_the_fix(value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_targets([value])
    text = str(caught.value)
    assert text.startswith(f"--target {value!r}")
    assert message in text
    assert caught.value.exit_code == 2


def test_no_target() -> None:
    with pytest.raises(UsageError, match="no target"):
        parse_targets([])


def test_check_url_strips_the_trailing_slash() -> None:
    assert check_url("http://127.0.0.1:8000/", "--url") == "http://127.0.0.1:8000"
    with pytest.raises(UsageError, match="--prometheus"):
        check_url("prometheus:9090", "--prometheus")
