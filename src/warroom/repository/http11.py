"""A minimal HTTP/1.1 client connection for :mod:`warroom.repository.s3wire`: one request at a
time on a kept-alive socket (TLS when given an ``ssl`` context), with ``http.client``'s shape
(``request``, ``getresponse``, a response's ``status``, ``getheader``, ``read`` and
``will_close``). ``http.client`` imports the ``email`` package and ``ssl``: 15 ms of every
``wal push`` to S3, a tenth of it.

A response body is framed as RFC 9112 says: none for HEAD, 1xx, 204 and 304; chunked when
``Transfer-Encoding`` says so; ``Content-Length`` bytes; or up to the end of the connection.
1xx answers before the final one are skipped. Every failure, the server's or the network's (a
refused or reset connection, a timeout, a malformed or cut answer), is an :class:`OSError`:
:class:`BadResponse` is the one this module raises itself.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ssl import SSLContext

__all__ = ["BadResponse", "Connection", "Response"]

MAX_LINE = 65536  # a status line, a header or a chunk size line (http.client's limit)
MAX_HEADERS = 100


class BadResponse(ConnectionError):
    """The server's answer is malformed, or ends before it is complete."""


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadResponse("a line of the answer is too long")
    return line


class Response:
    """One answer: ``status``, its headers (``getheader``, names in any case) and its body
    (``read``), which must be read to the end before the connection takes another request."""

    def __init__(self, stream: BinaryIO, method: str) -> None:
        self._stream = stream
        while True:
            status_line = _line(stream)
            if not status_line:
                raise BadResponse("the server closed the connection without answering")
            version, _, rest = status_line.decode("latin-1").partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise BadResponse(f"not an HTTP/1.x answer: {status_line[:80]!r}")
            self.status = int(code)
            self._headers = self._read_headers()
            if not 100 <= self.status < 200:
                break
        connection = self.getheader("Connection").lower()
        old = version == "HTTP/1.0" and connection != "keep-alive"
        self.will_close = connection == "close" or old
        self._chunked = False
        self._left: int | None  # bytes of the body (or of the current chunk) still to read
        if method == "HEAD" or self.status in (204, 304):
            self._left = 0
        elif "chunked" in self.getheader("Transfer-Encoding").lower():
            self._chunked, self._left = True, self._chunk_size()
        elif self.getheader("Content-Length"):
            length = self.getheader("Content-Length")
            if not length.isdigit():
                raise BadResponse(f"invalid Content-Length {length[:40]!r}")
            self._left = int(length)
        else:
            self._left, self.will_close = None, True  # up to the end of the connection

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = _line(self._stream)
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise BadResponse("the answer ends within its headers")
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise BadResponse(f"a malformed header: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        raise BadResponse(f"more than {MAX_HEADERS} headers")

    def _chunk_size(self) -> int:
        line = _line(self._stream).split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise BadResponse(f"a malformed chunk size {line[:40]!r}") from None
        if size == 0:
            self._read_headers()  # the trailer, up to the blank line that ends the body
        return size

    def getheader(self, name: str, default: str = "") -> str:
        return self._headers.get(name.lower(), default)

    def read(self, size: int | None = None) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when None); b"" at its end."""
        if self._left is None:  # up to the end of the connection
            return self._stream.read(-1 if size is None else size)
        pieces: list[bytes] = []
        wanted = -1 if size is None else size
        while self._left and wanted:
            take = self._left if wanted < 0 else min(wanted, self._left)
            data = self._stream.read(take)
            if len(data) < take:
                raise BadResponse("the answer ends before its body does")
            pieces.append(data)
            self._left -= take
            wanted = wanted - take if wanted > 0 else wanted
            if self._chunked and not self._left:
                if _line(self._stream) not in (b"\r\n", b"\n"):
                    raise BadResponse("a chunk does not end where its size says")
                self._left = self._chunk_size()
        return b"".join(pieces)


class Connection:
    """A connection to ``host``:``port``, opened by its first request (TLS with ``context``,
    checking the certificate against ``host``); ``timeout`` seconds to connect and between
    bytes."""

    def __init__(
        self, host: str, port: int, timeout: float, context: SSLContext | None = None
    ) -> None:
        self.host, self.port, self.timeout, self.context = host, port, timeout, context
        self._socket: socket.socket | None = None
        self._stream: BinaryIO | None = None
        self._method = ""

    def request(
        self, method: str, target: str, body: bytes | memoryview | None, headers: dict[str, str]
    ) -> None:
        """Send ``method`` ``target`` with ``headers`` (the caller's: Host and Content-Length
        included, and ``Accept-Encoding: identity`` as ``http.client`` adds it) and ``body``."""
        if self._socket is None:
            sock = socket.create_connection((self.host, self.port), self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.context is not None:
                    sock = self.context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
            self._socket, self._stream = sock, sock.makefile("rb")
        head = f"{method} {target} HTTP/1.1\r\nAccept-Encoding: identity\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self._socket.sendall((head + "\r\n").encode("latin-1"))
        if body:
            self._socket.sendall(body)
        self._method = method

    def getresponse(self) -> Response:
        if self._stream is None:
            raise BadResponse("no request was sent on this connection")
        return Response(self._stream, self._method)

    def close(self) -> None:
        stream, sock = self._stream, self._socket
        self._stream = self._socket = None
        if stream is not None:
            stream.close()
        if sock is not None:
            sock.close()
