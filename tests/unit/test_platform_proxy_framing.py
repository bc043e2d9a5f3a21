"""The proxy's HTTP/1.1 framing helpers (the data path itself is tested against real sockets in
tests/integration/test_platform_proxy.py)."""

from __future__ import annotations

import pytest
from rpops.platform.local.proxy import Backend, BadMessage, chunked_end, head_fields


def test_proxy_head_parsing() -> None:
    first, length, chunked, close, keep_alive, expect = head_fields(
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nConnection: Keep-Alive\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert (first, length, chunked, close, keep_alive, expect) == (
        b"POST /x HTTP/1.1",
        12,
        False,
        False,
        True,
        True,
    )
    assert head_fields(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")[
        1:4
    ] == (None, True, True)
    for bad in (
        b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        with pytest.raises(BadMessage):
            head_fields(bad)


def test_chunked_body_end() -> None:
    body = b"HEAD\r\n\r\n" + b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    assert chunked_end(body, 8) == len(body) - 4
    assert chunked_end(body[:-10], 8) == -1
    with pytest.raises(BadMessage):
        chunked_end(b"zz\r\n", 0)


def test_backends_must_be_loopback() -> None:
    assert Backend("127.0.0.1:8080").port == 8080
    for bad in ("10.0.0.1:80", "127.0.0.1:0", "127.0.0.1:99999", "localhost:80", "127.0.0.1"):
        with pytest.raises(ValueError, match="127.0.0.1:PORT"):
            Backend(bad)
