"""Read deadlines for uvicorn connections: a client that sends half a request is dropped.

uvicorn's keep-alive timeout only runs between requests; a connection that opens and sends
nothing, or half a header, or half a body, is otherwise held open for ever. `deadline_protocol`
wraps uvicorn's HTTP protocol class with one watchdog timer per connection:

- headers: a request's headers must have arrived `header_s` after the connection opened or the
  previous response was sent;
- body: once the headers are in, the body must have arrived within `body_s`;
- while the application works on a request, no deadline applies (it has its own).

On expiry the connection is closed; an application still reading the body sees a disconnect.
Headers are also capped in size (`max_header_bytes`, a 431 answer): httptools keeps every header
line it is sent, so without a cap a client could fill memory within the deadline.
Pass the class as `uvicorn.Config(http=...)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

# As uvicorn's keep-alive timeout: a client on the same network sends a request (headers, and a
# body of at most a few MiB) well within it.
HEADER_S = 5.0
BODY_S = 5.0
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; real clients send under 8 KiB
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"connection: close\r\ncontent-length: 33\r\n\r\nthe request headers are too large")


def deadline_protocol(header_s: float = HEADER_S, body_s: float = BODY_S,
                      base: type[asyncio.Protocol] | None = None,
                      max_header_bytes: int = MAX_HEADER_BYTES) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with read deadlines."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    parent: Any = base

    class DeadlineProtocol(parent):
        _watch: asyncio.TimerHandle | None = None
        _waiting_since = 0.0  # when the wait for the next request's headers began
        _body_cycle: Any = None  # the request whose body is being read
        _body_since = 0.0
        _head_bytes = 0  # received while waiting for the current request's headers

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._waiting_since = self.loop.time()
            self._arm(header_s)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            # Bytes that are no request body are header bytes (the next request's, when pipelined);
            # body bytes are held back by uvicorn's flow control and capped by the application.
            waiting = before is None or before.response_complete or not before.more_body
            super().data_received(data)
            cycle = self.cycle
            if cycle is not None and cycle is not self._body_cycle and not cycle.response_complete:
                self._body_cycle, self._body_since = cycle, self.loop.time()  # headers just arrived
            if not waiting:
                return
            if cycle is not before:
                self._head_bytes = 0
                return
            self._head_bytes += len(data)
            if self._head_bytes > max_header_bytes and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE)
                self.transport.close()

        def on_response_complete(self) -> None:
            self._waiting_since = self.loop.time()
            super().on_response_complete()

        def _arm(self, delay: float) -> None:
            self._watch = self.loop.call_later(max(0.05, delay), self._check)

        def _check(self) -> None:
            self._watch = None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            now = self.loop.time()
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                late = now - self._waiting_since - header_s
                if late >= 0:
                    transport.close()  # no complete request header in time
                    return
                self._arm(-late)
            elif cycle.more_body and not cycle.disconnected:
                late = now - self._body_since - body_s
                if late >= 0:
                    transport.close()  # the body did not arrive in time
                    return
                self._arm(-late)
            else:
                self._arm(header_s)  # the application is working: look again later

    DeadlineProtocol.__name__ = DeadlineProtocol.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineProtocol
