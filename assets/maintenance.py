"""Warehouse upkeep: merge small files, expire old snapshots (lineage ones kept), delete unused files.

Thin: the work is ``warehouse.maintenance.maintain``; this asset configures it and reports files and
bytes before and after. ``warehouse_maintenance_schedule`` runs it daily. Between those runs
``warehouse_fold_sensor`` starts ``warehouse_fold_job`` (``warehouse.maintenance.fold``, the job's first
phase alone) whenever commits have recorded superseded projection rows, so ``*_latest`` reads go back to
the bare projection within a sensor interval instead of paying the superseded-row join until the night.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from resources import WarehouseResource
from warehouse.maintenance import FileStats, MaintenancePolicy, fold, maintain, superseded_rows


class MaintenanceConfig(dg.Config):
    snapshot_retention_days: float = Field(
        default=7.0, description="expire snapshots older than this, except those a model or evaluation points to")
    file_grace_hours: float = Field(
        default=1.0, description="delete merged-away, expired-only and orphaned files once older than this")


def _stats(prefix: str, s: FileStats) -> dict[str, dg.MetadataValue]:
    meta = {f"{prefix}_live_files": dg.MetadataValue.int(s.live_files),
            f"{prefix}_tracked_files": dg.MetadataValue.int(s.tracked_files),
            f"{prefix}_tracked_bytes": dg.MetadataValue.int(s.tracked_bytes),
            f"{prefix}_snapshots": dg.MetadataValue.int(s.snapshots)}
    if s.disk_files is not None:
        meta[f"{prefix}_disk_files"] = dg.MetadataValue.int(s.disk_files)
        meta[f"{prefix}_disk_bytes"] = dg.MetadataValue.int(s.disk_bytes or 0)
    return meta


@dg.asset(group_name="maintenance", kinds={"duckdb"},
          description="Merges the warehouse's small Parquet files, expires snapshots older than the retention "
          "except every snapshot a registered model was trained on or an evaluation read (lineage stays "
          "readable with time travel), and deletes files no snapshot needs; reports files and bytes before/after.")
def warehouse_maintenance(context: dg.AssetExecutionContext, config: MaintenanceConfig,
                          warehouse: WarehouseResource) -> dg.MaterializeResult:
    policy = MaintenancePolicy(snapshot_retention=dt.timedelta(days=config.snapshot_retention_days),
                               file_grace=dt.timedelta(hours=config.file_grace_hours))
    report = maintain(warehouse.get(), policy)
    b, a = report.before, report.after
    context.log.info(f"warehouse maintenance: tracked files {b.tracked_files} → {a.tracked_files}, "
                     f"snapshots {b.snapshots} → {a.snapshots}, {report.deleted_files} files deleted")
    return dg.MaterializeResult(metadata={
        **_stats("before", b), **_stats("after", a),
        "expired_snapshots": dg.MetadataValue.int(len(report.expired_snapshots)),
        "pinned_snapshots_kept": dg.MetadataValue.json(report.pinned_snapshots),
        "deleted_files": dg.MetadataValue.int(report.deleted_files),
        "folded_superseded_rows": dg.MetadataValue.json(report.folded_rows),
        "seconds_per_phase": dg.MetadataValue.json(report.seconds),
    })


warehouse_maintenance_job = dg.define_asset_job(
    "warehouse_maintenance_job", selection=dg.AssetSelection.assets(warehouse_maintenance),
    description="Merge small files, expire old snapshots (lineage kept), delete unused files.",
    executor_def=dg.in_process_executor)  # one step: a step process would only add an import of the code location

warehouse_maintenance_schedule = dg.ScheduleDefinition(
    job=warehouse_maintenance_job, cron_schedule="30 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily warehouse maintenance at 03:30.")


@dg.op(description="Delete the projection rows recorded as superseded (warehouse.maintenance.fold).")
def fold_superseded_rows(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    folded = fold(warehouse.get())
    context.log.info(f"folded superseded projection rows: {folded or 'none left'}")


@dg.job(description="Fold the superseded projection rows, so *_latest reads skip their join again.",
        executor_def=dg.in_process_executor)
def warehouse_fold_job() -> None:
    fold_superseded_rows()


@dg.sensor(job=warehouse_fold_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts warehouse_fold_job when commits have recorded superseded projection rows "
           "(at most one run per warehouse snapshot).")
def warehouse_fold_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    pending = superseded_rows(wh)
    if not pending:
        return dg.SkipReason("no superseded projection rows to fold")
    return dg.RunRequest(run_key=f"fold-{wh.current_snapshot()}", tags={"zhufu/superseded_rows": str(pending)})
