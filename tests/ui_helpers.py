"""A real Dagster webserver and a real (Debian) Chromium for the browser tests.

The webserver runs in its own process group so that it, its code server and the runs it launches
are stopped together, and only they. Chromium is the operating system's (``apt-get install
chromium``), launched by path: ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# No daemon in the tests: the default run coordinator launches a run at once.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


def chromium_path() -> str | None:
    path = os.environ.get("ZHUFU_CHROMIUM")
    if path:
        return path
    return next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Webserver:
    url: str
    dagster_home: Path
    zhufu_home: Path
    log: Path


@contextmanager
def webserver(dagster_home: Path, zhufu_home: Path, *, timeout: float = 240) -> Iterator[Webserver]:
    """``dagster-webserver`` on a free port over a fresh DAGSTER_HOME and warehouse; stopped on exit."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "ZHUFU_HOME": str(zhufu_home),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for var in ("ZHUFU_CATALOG", "ZHUFU_DATA_PATH", "ZHUFU_SEED_DATA", "ZHUFU_INBOX"):
        env.pop(var, None)
    log = dagster_home / "webserver.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
             "-w", "workspace.yaml"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, url, log, timeout)
        yield Webserver(url, dagster_home, zhufu_home, log)
    finally:
        _stop_group(proc)


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster-webserver not up after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the webserver's own process group (webserver, code server, runs), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the same group (a run still going)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def save_failure_artifacts(page, name: str) -> Path:
    """A full-page screenshot and the page's visible text, under test-artifacts/<name>/ (not in git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        page.screenshot(path=str(out / "page.png"), full_page=True)
        (out / "page.txt").write_text(f"{page.url}\n\n{page.inner_text('body')}")
    except Exception as exc:  # the page may be gone with the failure; say so instead of hiding it
        (out / "error.txt").write_text(repr(exc))
    return out
