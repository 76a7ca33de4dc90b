"""An S3-compatible server on 127.0.0.1 (moto's server mode), for the storage and DVC-remote tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.labelstudio.server import free_port

REGION = "us-east-1"
# moto accepts any key pair; these are placeholders for a loopback test server, not credentials.
ACCESS_KEY, SECRET_KEY = "testing-access-key", "testing-secret-key"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        """AWS variables that point boto3, s3fs and DVC at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


def missing_reason() -> str | None:
    """Why the server cannot start here, or None."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists() and shutil.which("moto_server") is None:
        return "moto_server not installed; pip install 'moto[server]==5.2.5' (in the test extra)"
    return None


@contextmanager
def running(log_dir: Path) -> Iterator[S3Server]:
    """Start `moto_server` on a free loopback port and wait until it answers; stop it afterwards."""
    executable = Path(sys.executable).with_name("moto_server")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_dir / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [str(executable if executable.exists() else "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start; see {log_dir / 'moto.log'}") from None
                time.sleep(0.2)  # polling a starting process: no event to wait on
        yield S3Server(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=30)
