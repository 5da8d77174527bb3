"""Start the real Dagster webserver on a free port and launch a materialization through GraphQL."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from dagster_graphql import DagsterGraphQLClient

from warehouse import Warehouse, WarehouseConfig

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_launches_a_materialization_through_graphql(zhufu_home, tmp_path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    # The default run coordinator launches at once (no daemon needed in a test).
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
         "-w", "workspace.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        run_id = client.submit_job_execution("seed_data_job", repository_location_name="zhufu")
        status = None
        while time.time() < deadline + 120:
            status = client.get_run_status(run_id).value
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
        assert status == "SUCCESS"
        wh = Warehouse(WarehouseConfig.embedded(zhufu_home))
        assert wh.count("human_labels") > 0
        assert run_id in set(wh.snapshots()["run_id"].drop_nulls())
    finally:
        server.terminate()
        server.wait(timeout=30)
