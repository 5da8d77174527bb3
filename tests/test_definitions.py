"""The code location loads: `dagster definitions validate` passes on workspace.yaml."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_definitions_validate(zhufu_home):
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed validation" in proc.stdout + proc.stderr


def test_definitions_wire_assets_resources_sensors_and_jobs():
    from definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"prompts", "seed_sft_examples", "seed_preference_pairs", "human_labels"} <= keys
    assert {"warehouse", "datasets"} <= set(defs.resources)
    assert defs.resolve_sensor_def("inbox_sensor")
    assert defs.resolve_job_def("seed_data_job")
