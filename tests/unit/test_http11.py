"""The minimal HTTP/1.1 connection of the S3 client: how it frames answers (length, chunked,
up to the end of the connection, none), skips 1xx answers, keeps a connection for the next
request, and refuses what is malformed or cut short (an OSError, as a network failure is).
A server on loopback sends canned answers to whatever it is asked."""

from __future__ import annotations

import socket
import threading

import pytest

from warroom.repository.http11 import BadResponse, Connection


def _serve(listener: socket.socket, answers: list[bytes], requests: list[bytes]) -> None:
    """Answer each request on one connection with the next of ``answers``, then close."""
    peer, _ = listener.accept()
    with peer:
        buffer = b""
        for answer in answers:
            while b"\r\n\r\n" not in buffer:
                data = peer.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer += peer.recv(65536)
            requests.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
            peer.sendall(answer)


def _exchange(
    answers: list[bytes], calls: list[tuple[str, bytes]]
) -> tuple[list[tuple[int, bytes, bool]], list[bytes]]:
    """Send ``calls`` (method, body) on one connection to a server giving ``answers``;
    each answer's status, body and will_close, and the requests as received."""
    requests: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        thread = threading.Thread(target=_serve, args=(listener, answers, requests), daemon=True)
        thread.start()
        connection = Connection("127.0.0.1", port, 5.0)
        results = []
        try:
            for method, body in calls:
                headers = {"Host": f"127.0.0.1:{port}"}
                if body:
                    headers["Content-Length"] = str(len(body))
                connection.request(method, "/b/k?x=1", body, headers)
                response = connection.getresponse()
                results.append((response.status, response.read(), response.will_close))
        finally:
            connection.close()
            thread.join(timeout=5)
    return results, requests


def test_bodies_by_length_chunked_and_none_on_one_kept_connection() -> None:
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "e"\r\n\r\nhello',
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\n",  # HEAD: no body
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    calls = [("PUT", b"payload"), ("GET", b""), ("HEAD", b""), ("DELETE", b"")]
    results, requests = _exchange(answers, calls)
    assert results == [
        (200, b"hello", False),
        (200, b"abcdefg", False),
        (404, b"", False),
        (204, b"", False),
    ]
    assert requests[0].startswith(b"PUT /b/k?x=1 HTTP/1.1\r\n")
    assert b"\r\nAccept-Encoding: identity\r\n" in requests[0]
    assert requests[0].endswith(b"\r\n\r\npayload")


def test_a_body_up_to_the_end_of_the_connection_and_connection_close() -> None:
    results, _ = _exchange([b"HTTP/1.1 200 OK\r\n\r\nall of it"], [("GET", b"")])
    assert results == [(200, b"all of it", True)]
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert _exchange([answer], [("GET", b"")])[0] == [(200, b"ok", True)]
    answer = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert _exchange([answer], [("GET", b"")])[0] == [(200, b"ok", True)]


def test_reads_in_pieces_across_chunks() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    with socket.create_server(("127.0.0.1", 0)) as listener:
        requests: list[bytes] = []
        thread = threading.Thread(target=_serve, args=(listener, [answer], requests), daemon=True)
        thread.start()
        connection = Connection("127.0.0.1", listener.getsockname()[1], 5.0)
        connection.request("GET", "/", None, {"Host": "h"})
        response = connection.getresponse()
        assert [response.read(5), response.read(5), response.read(5)] == [b"abcde", b"fg", b""]
        connection.close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without answering (a kept connection the server dropped)
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",  # cut within the headers
    ],
)
def test_malformed_or_cut_answers_are_connection_errors(answer: bytes) -> None:
    with pytest.raises(BadResponse) as caught:
        _exchange([answer], [("GET", b"")])
    assert isinstance(caught.value, OSError)
