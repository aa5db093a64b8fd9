"""The HTTP/1.1 protocol `python -m app` runs: uvicorn's httptools one, with a bounded head.

httptools (llhttp) sets no limit on a request's line and headers: a 1 MB header line or
10,000 headers reached the application and were answered `200`, and one header line that
never ends grows in memory (re-copied at every packet) for as long as the client sends it.
Here the head of each request may hold HEAD_MAX_BYTES and HEADERS_MAX fields; past either,
the client gets `431` in the contract's `{"message"}` shape and the connection is closed.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# nginx allows 4 buffers of 8 KiB by default, Node.js 16 KiB; cookies of sibling sites on one domain
# can add several KiB, so there is room to spare.
HEAD_MAX_BYTES = 64 * 1024
# Browsers send about twenty; proxies add a few.
HEADERS_MAX = 256
END_OF_HEAD = b"\r\n\r\n"
# After refusing, the rest of what the client sends is read and dropped for this long before
# the connection closes: closing with unread data would reset it, and the client would
# likely lose the answer (nginx's "lingering close").
LINGER_SECONDS = 2.0

_BODY = json.dumps({"message": "Request header fields too large"}).encode()
REFUSAL = b"".join(
    [
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(_BODY),
        b"connection: close\r\n",
        b"cache-control: no-store\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"content-security-policy: default-src 'none'; frame-ancestors 'none'; sandbox\r\n",
        b"\r\n",
        _BODY,
    ]
)


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools and uvicorn turn it into a refusal."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head past its bounds with `431`."""

    _reading_head = True
    _head_bytes = 0
    _head_fields = 0
    _tail = b""  # the last bytes read, where the blank line ending the head may start
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            # Counted before parsing: httptools would keep whatever arrives first.
            seen = self._tail + data
            end = seen.find(END_OF_HEAD)
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = seen[-3:]
            if self._head_bytes > HEAD_MAX_BYTES:
                self._refuse()
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any error raised in a parser callback with 400; HeadTooLarge's is 431.
        if self._head_fields > HEADERS_MAX:
            self._refuse()
        else:
            super().send_400_response(msg)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > HEADERS_MAX:
            raise HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head, self._head_bytes, self._head_fields, self._tail = True, 0, 0, b""
        super().on_message_complete()

    def _refuse(self) -> None:
        self.logger.warning("Request head too large: refused with 431.")
        self._refused = True
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(REFUSAL)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
