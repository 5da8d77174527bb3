"""The warehouse on real scale-out engines: a PostgreSQL catalog and Parquet data on an S3 server (both
started by the tests from pip packages). Appends, deduplication, time travel, the current-state
projections, the change feed and four concurrent writer processes behave as on the embedded default."""

import multiprocessing as mp
import os

import boto3
import pytest

from tests.remote_servers import postgres, s3_server
from tests.test_warehouse_concurrency import writer
from tests.test_warehouse_store import migration_applied_meanwhile_by_another_writer
from warehouse import Warehouse, WarehouseConfig
from warehouse.config import S3Settings
from warehouse.migrations import MIGRATIONS
from warehouse.schema import PromptRow


@pytest.fixture(scope="module")
def remote():
    with postgres() as database, s3_server() as s3:
        old = {k: os.environ.get(k) for k in s3}
        os.environ.update(s3)
        try:
            yield {"database": database, "s3": s3}
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _config(remote, name: str) -> WarehouseConfig:
    """A DuckLake of its own: a database on the PostgreSQL server, a prefix in the bucket."""
    return WarehouseConfig(catalog=f"postgres:{remote['database'](name)}", data_path=f"s3://lake/{name}/",
                           lock_dir=None, s3=S3Settings.from_env())


def _objects(remote, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=f"http://{remote['s3']['ZHUFU_S3_ENDPOINT']}", aws_access_key_id="zhufu-test",
                      aws_secret_access_key="zhufu-test-secret", region_name="us-east-1")
    return [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix=prefix).get("Contents", [])]


def test_events_on_postgres_and_s3_dedupe_time_travel_and_project(remote):
    config = _config(remote, "one")
    wh = Warehouse(config)
    first = wh.append([PromptRow(text=f"祝福{i}", source="t", source_ref=str(i), batch="b") for i in range(3)])
    again = wh.append([PromptRow(text=f"祝福{i}", source="t", source_ref=str(i), batch="b") for i in range(4)])
    assert first.tables["prompts"].added == 3 and again.tables["prompts"].added == 1
    assert wh.count("prompts") == 4
    assert wh.sql("SELECT count(*) AS n FROM prompts_latest")["n"][0] == 4
    assert wh.sql("SELECT count(*) AS n FROM prompts", as_of=first.snapshot_id)["n"][0] == 3
    changes = wh.changes("prompts", first.snapshot_id + 1)
    assert changes.height == 1
    assert any(k.endswith(".parquet") for k in _objects(remote, "one/"))  # the data is on the S3 server
    assert "zhufu-test-secret" not in repr(config) and "zhufu-test-secret" not in config.describe()


def test_four_processes_migrating_and_appending_at_once_to_a_postgres_catalog_store_every_row_once(remote):
    """No process migrates first: on a server catalog there is no inter-process lock, so the four find
    every migration pending at once; each migration must still be applied exactly once."""
    config = _config(remote, "four")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=writer, args=(config, w, barrier, 3)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    wh = Warehouse(config)
    counts = wh.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM prompts").row(0, named=True)
    assert counts == {"n": 3 * 4 + 4 * 3 * 3, "d": 3 * 4 + 4 * 3 * 3}
    assert wh.sql("SELECT count(*) AS n FROM materializations")["n"][0] == 12
    ledger = wh.sql("SELECT version, count(*) AS n FROM schema_migrations GROUP BY version")
    assert ledger.height == len(MIGRATIONS) and set(ledger["n"]) == {1}


def test_a_migration_another_writer_applies_meanwhile_is_applied_once_on_postgres(remote):
    # PostgreSQL takes no lock that would make the second commit fail: only the guard row's conflict does
    migration_applied_meanwhile_by_another_writer(Warehouse(_config(remote, "race")))


def test_dagster_on_postgres_materializes_into_the_remote_warehouse(remote, tmp_path):
    """Dagster's own storage (runs, events) on the PostgreSQL server too (dagster-postgres; the URL names
    psycopg2, SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3, which dagster-postgres' NOTIFY
    statements do not support), and an asset that writes through the WarehouseResource configured for
    the remote catalog and data path; the sandboxed read-only connection (the SQL CLI's) reads it."""
    import dagster as dg

    from resources import WarehouseResource

    dagster_db = remote["database"]("dagster")
    host = dagster_db.split("host=")[1].split()[0]
    (tmp_path / "dagster.yaml").write_text(
        f'storage:\n  postgres:\n    postgres_url: "postgresql+psycopg2://postgres@/dagster?host={host}"\n'
        "telemetry:\n  enabled: false\n")
    lake = _config(remote, "dagster_lake")
    warehouse = WarehouseResource(catalog=lake.catalog, data_path=lake.data_path)

    @dg.asset
    def greetings(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        return warehouse.record(context, [PromptRow(text=f"新年祝福{i}", source="t", source_ref=str(i), batch="b")
                                          for i in range(3)], main_table="prompts")

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert dg.materialize([greetings], instance=instance, resources={"warehouse": warehouse}).success
        assert len(instance.get_runs()) == 1
        event = instance.get_latest_materialization_event(dg.AssetKey("greetings"))
        assert event.asset_materialization.metadata["rows_added"].value == 3
    wh = Warehouse(warehouse.warehouse_config())
    assert wh.sql("SELECT count(*) AS n FROM prompts_latest", sandboxed=True)["n"][0] == 3


def test_grpo_judge_call_log_reads_and_writes_the_remote_warehouse(remote):
    """The GRPO process's judge call log opens the warehouse the asset named, S3 settings included (it
    once reached for AWS instead of the configured S3 server: found by the whole demo on these engines)."""
    from types import SimpleNamespace

    from training.config import CallLogConfig
    from training.grpo import judge_call_log

    config = _config(remote, "calllog")
    Warehouse(config).migrate()
    log = judge_call_log(SimpleNamespace(call_log=CallLogConfig(
        run_id="r1", asset_key="mrpo_policy", catalog=config.catalog, data_path=config.data_path)))
    assert log.warehouse.config.s3 is not None and log.warehouse.config.s3.endpoint == remote["s3"]["ZHUFU_S3_ENDPOINT"]
    assert log.lookup(["no-such-request"]) == {}  # read through the remote catalog and the S3 server
