"""A real S3-compatible server on loopback for the tests: moto's server mode, started as a
subprocess (``moto_server -H 127.0.0.1 -p 0``: the kernel picks a free port, and the server
prints the one it got, which is read from its output, so no port race and no waiting loop).
:func:`recording_proxy` puts a real HTTP proxy in front of it that records what clients send.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import boto3

# Test-only credentials of the throwaway server (moto accepts any).
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIATESTONLY0000KEY1",
    "AWS_SECRET_ACCESS_KEY": "test-secret-never-printed",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server(NamedTuple):
    endpoint: str
    pid: int  # the server's process (the benchmark reads its memory apart from ours)

    def environment(self) -> dict[str, str]:
        return {**ENVIRONMENT, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        """A boto3 S3 client of this server, for a test to look at or alter objects."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ENVIRONMENT["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"wr-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def moto_server(environment: dict[str, str] | None = None) -> Iterator[S3Server]:
    """The server, its process started with ``environment`` added to ours (moto's settings,
    such as INITIAL_NO_AUTH_ACTION_COUNT to have it check signatures)."""
    binary = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(environment or {})},
    )
    drain = None
    try:
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                break
        else:
            raise RuntimeError(f"moto_server exited with {process.wait()}")
        # Keep reading its request log, or the pipe fills and the server blocks.
        drain = threading.Thread(target=process.stderr.read, daemon=True)
        drain.start()
        yield S3Server(match.group(1), process.pid)
    finally:
        process.terminate()
        process.wait()
        if process.stderr is not None:
            if drain is not None:
                drain.join()
            process.stderr.close()


class Sent(NamedTuple):
    """One request as a client sent it: header names lower-cased."""

    method: str
    path: str  # with its query
    headers: dict[str, str]
    body: bytes


def self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1 (key and certificate in one PEM file under ``directory``)
    for a TLS server on loopback; clients trust it through ``AWS_CA_BUNDLE``."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(loopback, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = directory / "loopback.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    return pem


@contextmanager
def recording_proxy(
    server: S3Server, tls: Path | None = None, ignored: frozenset[str] = frozenset()
) -> Iterator[tuple[S3Server, list[Sent]]]:
    """A reverse proxy on loopback in front of ``server`` (the same server to its clients,
    at another endpoint; over HTTPS with ``tls``, a :func:`self_signed` PEM file) and the list
    of requests sent through it, in order. A body sent without a length (chunked) is recorded
    empty and answered 400 (ChunkedBody), not relayed. The ``ignored`` headers (lower-case
    names) are recorded but not relayed: a server that does not know them."""
    target = urlsplit(server.endpoint)
    sent: list[Sent] = []

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def refuse_chunked(self, headers: dict[str, str]) -> None:
            """Read the chunked body to its end (the client is still sending), then refuse."""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                self.rfile.read(size + 2)  # the chunk and its CRLF
            while self.rfile.readline().strip():
                pass  # HTTP trailers, up to the blank line
            sent.append(Sent(self.command, self.path, headers, b""))
            body = b"<Error><Code>ChunkedBody</Code><Message>not relayed</Message></Error>"
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def relay(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            if "transfer-encoding" in headers:
                self.refuse_chunked(headers)
                return
            body = self.rfile.read(int(headers.get("content-length", 0)))
            sent.append(Sent(self.command, self.path, headers, body))
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                forwarded = {k: v for k, v in headers.items() if k != "expect" and k not in ignored}
                upstream.request(self.command, self.path, body or None, forwarded)
                answer = upstream.getresponse()
                data = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "content-length"):
                    self.send_header(name, value)  # Connection too: it closes when moto does
            length = answer.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay

        def log_message(self, format: str, *args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls)
        proxy.socket = context.wrap_socket(proxy.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Server(f"{scheme}://127.0.0.1:{proxy.server_address[1]}", server.pid), sent
    finally:
        proxy.shutdown()
        proxy.server_close()
