"""``make demo``: materialize the whole asset graph on the embedded default, then show the data.

    python -m assets.demo [--batches builtin igniting-queries …]

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so they show up in `make ui`.
"""

from __future__ import annotations

import argparse
import os

import dagster as dg

from assets.partitions import prompt_batches
from definitions import defs
from resources.datasets import DatasetsResource
from warehouse import Warehouse, WarehouseConfig

EXAMPLE_QUERIES = (
    ("Which occasions do the prompts cover?",
     "SELECT meta->>'occasion' AS occasion, count(*) AS prompts FROM prompts "
     "GROUP BY ALL ORDER BY prompts DESC, occasion LIMIT 8"),
    ("Are labelled-good greetings just longer? (the length bias, DESIGN.md)",
     "SELECT label, count(*) AS n, round(avg(length(response)), 1) AS mean_chars FROM human_labels_latest "
     "GROUP BY label ORDER BY label"),
    ("Which materialization wrote what?",
     "SELECT asset_key, partition_key, rows_added, run_id FROM materializations "
     "ORDER BY created_at DESC LIMIT 8"),
)


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def materialize_all(batches: list[str] | None = None, instance: dg.DagsterInstance | None = None) -> list[str]:
    """Materialize every asset: the unpartitioned ones once, the partitioned ones per batch."""
    instance = instance or _instance()
    datasets = DatasetsResource.from_env()
    batches = batches or [*datasets.standing_batches(), *datasets.inbox_files()]
    instance.add_dynamic_partitions(prompt_batches.name, batches)
    graph = defs.resolve_asset_graph()
    all_keys = list(graph.get_all_asset_keys())
    partitioned = [k for k in all_keys if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in all_keys if graph.get(k).partitions_def is None]
    assets = list(defs.assets or [])
    resources = defs.resources or {}
    failures = []
    if unpartitioned:
        res = dg.materialize(assets, selection=unpartitioned, instance=instance, resources=resources,
                             raise_on_error=False)
        failures += [] if res.success else ["(unpartitioned)"]
    for batch in batches:
        res = dg.materialize(assets, selection=partitioned, partition_key=batch, instance=instance,
                             resources=resources, raise_on_error=False)
        failures += [] if res.success else [batch]
    return failures


def show(wh: Warehouse) -> None:
    print(f"\nThe data lives in the DuckLake warehouse: {wh.config.describe()}")
    print("Query it read-only with:  .venv/bin/python -m warehouse sql \"SELECT …\"  (--as-of SNAPSHOT for time travel)\n")
    for question, sql in EXAMPLE_QUERIES:
        print(f"-- {question}\n{sql}")
        print(wh.sql(sql))
        print()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m assets.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", nargs="*", help="prompt batches to materialize (default: all known)")
    args = parser.parse_args()
    failures = materialize_all(args.batches)
    show(Warehouse(WarehouseConfig.from_env()))
    if failures:
        print(f"FAILED: {failures}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
