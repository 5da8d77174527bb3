"""Maintenance merges small files and expires old snapshots, yet every snapshot a registered model
or evaluation points to stays readable with time travel."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from assets.maintenance import warehouse_maintenance
from resources import WarehouseResource
from warehouse.maintenance import MaintenancePolicy, maintain
from warehouse.schema import CalibrationRow, ModelRow, PromptRow

NOW = MaintenancePolicy(snapshot_retention=dt.timedelta(0), file_grace=dt.timedelta(0))


def _commit_batches(wh, n: int) -> list[int]:
    return [wh.append([PromptRow(text=f"祝福 {i}-{j}", source="t", source_ref="r", batch="b") for j in range(5)],
                      asset_key="prompts").snapshot_id for i in range(n)]


def _lineage(wh, model_snapshot: int, calibration_snapshot: int) -> None:
    wh.append([
        ModelRow(model_id="rm-1", kind="reward", base="smollm2", hyperparams={}, metrics={}, artifact_path="/m",
                 input_snapshots={"preference_pairs": model_snapshot, "human_labels": model_snapshot}),
        CalibrationRow(evaluator="path_a/judge", model="j", prompt_version="1", calibration_set="c", source="s",
                       snapshot=calibration_snapshot, n=4, threshold=0.5, accuracy=1.0, positive_rate=0.5,
                       human_positive_rate=0.5),
    ], asset_key="models")


def _count_at(wh, snapshot: int) -> int:
    return int(wh.sql("SELECT count(*) AS n FROM prompts", as_of=snapshot)["n"][0])


def test_lineage_snapshots_stay_readable_after_expiry_and_the_files_shrink(wh):
    snapshots = _commit_batches(wh, 12)
    model_at, calibration_at = snapshots[3], snapshots[7]
    _lineage(wh, model_at, calibration_at)
    expected = {s: _count_at(wh, s) for s in (model_at, calibration_at)}
    current = wh.current_snapshot()

    report = maintain(wh, NOW)

    assert report.after.disk_files < report.before.disk_files
    assert report.after.live_files < report.before.live_files
    assert report.after.tracked_files < report.before.tracked_files
    assert {model_at, calibration_at} <= set(report.pinned_snapshots)
    assert {model_at, calibration_at}.isdisjoint(report.expired_snapshots) and snapshots[5] in report.expired_snapshots
    for snapshot, n in expected.items():  # through the Python API and through SQL time travel
        assert _count_at(wh, snapshot) == n
        assert wh.sql(f"SELECT count(*) AS n FROM prompts AT (VERSION => {snapshot})")["n"][0] == n
    with pytest.raises(Exception, match="snapshot"):
        _count_at(wh, snapshots[5])
    assert wh.count("prompts") == 60 and wh.current_snapshot() >= current
    assert wh.sql("SELECT count(*) AS n FROM prompts_latest")["n"][0] == 60
    live = wh.sql("SELECT count(*) AS n FROM ducklake_list_files('lake', 'prompts')")["n"][0]
    assert live == 1  # twelve commits, one file


def test_the_default_policy_merges_but_keeps_every_snapshot_and_file_for_a_while(wh):
    snapshots = _commit_batches(wh, 6)
    counts = {s: _count_at(wh, s) for s in snapshots}
    report = maintain(wh)
    assert report.expired_snapshots == [] and report.deleted_files == 0
    assert report.after.live_files < report.before.live_files
    assert report.after.disk_files >= report.before.disk_files  # merged-away files wait out the grace period
    assert {s: _count_at(wh, s) for s in snapshots} == counts


def test_the_maintenance_asset_reports_files_before_and_after(zhufu_home):
    resource = WarehouseResource(home=str(zhufu_home))
    _commit_batches(resource.get(), 5)
    result = dg.materialize([warehouse_maintenance], resources={"warehouse": resource}, run_config={
        "ops": {"warehouse_maintenance": {"config": {"snapshot_retention_days": 0, "file_grace_hours": 0}}}})
    assert result.success
    meta = result.asset_materializations_for_node("warehouse_maintenance")[0].metadata
    assert meta["after_disk_files"].value < meta["before_disk_files"].value
    assert meta["after_snapshots"].value < meta["before_snapshots"].value
    assert meta["before_tracked_bytes"].value > 0


def test_the_fold_sensor_runs_the_fold_job_once_superseded_rows_are_recorded(zhufu_home):
    from assets.maintenance import warehouse_fold_job, warehouse_fold_sensor
    from warehouse.schema import VerdictRow

    resource = WarehouseResource(home=str(zhufu_home))
    wh = resource.get()

    def verdict(label: int) -> VerdictRow:
        return VerdictRow(candidate_id="c", stage="judge", label=label, reason=f"理由{label}", agent_version="1")

    wh.append([verdict(0)])
    ctx = dg.build_sensor_context(resources={"warehouse": resource})
    assert isinstance(warehouse_fold_sensor(ctx), dg.SkipReason)  # nothing superseded yet
    wh.append([verdict(1)])  # re-judged: its first row is superseded
    request = warehouse_fold_sensor(ctx)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"fold-{wh.current_snapshot()}"
    assert warehouse_fold_job.execute_in_process(resources={"warehouse": resource}).success
    assert wh.count("verdicts_superseded") == 0 and isinstance(warehouse_fold_sensor(ctx), dg.SkipReason)
    assert wh.sql("SELECT label FROM verdicts_latest").rows() == [(1,)]
