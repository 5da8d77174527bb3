"""Four processes appending at once to the embedded (SQLite) catalog store every row exactly once."""

import multiprocessing as mp

from warehouse import Warehouse, WarehouseConfig
from warehouse.schema import PromptRow


def writer(config: WarehouseConfig, worker: int, barrier, batches: int = 5) -> None:
    """One of several processes appending at once (also the remote-catalog test's writer)."""
    wh = Warehouse(config)
    barrier.wait()
    for batch in range(batches):
        # Every worker offers the shared rows and its own; shared ones must not be stored twice.
        shared = [PromptRow(text=f"共享 {batch}-{i}", source="t", source_ref="s", batch="s") for i in range(4)]
        own = [PromptRow(text=f"进程{worker} {batch}-{i}", source="t", source_ref="o", batch="o") for i in range(3)]
        wh.append(shared + own, run_id=f"w{worker}", asset_key="prompts")


def test_four_processes_appending_at_once_store_every_row_exactly_once(zhufu_home):
    Warehouse(WarehouseConfig.embedded(zhufu_home)).migrate()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=writer, args=(WarehouseConfig.embedded(zhufu_home), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    wh = Warehouse(WarehouseConfig.embedded(zhufu_home))
    counts = wh.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM prompts").row(0, named=True)
    assert counts == {"n": 5 * 4 + 4 * 5 * 3, "d": 5 * 4 + 4 * 5 * 3}
    # one snapshot per append, none lost
    assert wh.sql("SELECT count(*) AS n FROM materializations")["n"][0] == 20
