"""A real S3-compatible server on loopback for the tests: moto's server mode, started as a
subprocess (``moto_server -H 127.0.0.1 -p 0``: the kernel picks a free port, and the server
prints the one it got, which is read from its output, so no port race and no waiting loop).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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
