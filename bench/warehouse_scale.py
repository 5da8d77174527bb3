"""The event store at scale (issue 15): commits, reads and maintenance through the Warehouse API.

    python -m bench.warehouse_scale --rows 1000000           # 100 commits of 10k verdicts
    python -m bench.warehouse_scale --rows 100000 --repeats 10 --out /tmp/scale.json
    python -m bench.warehouse_scale --rows 1000000 --maintain-every 20   # the scheduled maintenance job in between

Commits ``--rows`` ``verdicts`` events in commits of ``--batch`` through ``Warehouse.append`` (one
snapshot each; ``--corrections`` of every commit after the first re-judges earlier candidates, so
``verdicts_latest`` has superseded rows to drop), then times reads through ``Warehouse.sql`` on a
warm instance: ``SELECT 1``, a label aggregate over the raw table and over ``verdicts_latest``, a
time-travel read and a change feed, beside DuckDB on the raw Parquet files (the anchor: the same
aggregates, no catalog). Then it registers a model trained on the mid snapshot, runs maintenance
(retention 0, no grace: every snapshot but that lineage one and the current one expires) and times
the reads again. ``--maintain-every N`` also runs the maintenance job (default policy: nothing expires,
files merged and rewritten) after every N commits, as its schedule would between commits, timed apart
from the commits. ``--fold-every N`` runs the fold alone (``warehouse.maintenance.fold``, what
``warehouse_fold_sensor`` starts after commits that superseded rows) after every N commits and after the
last, timed apart too; ``verdicts_latest`` is then also timed just before the last fold. Prints one table;
``--out`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from tabulate import tabulate

import warehouse.commit_index as commit_index
from warehouse import Warehouse, WarehouseConfig
from warehouse.maintenance import MaintenancePolicy, fold, maintain
from warehouse.schema import ModelRow, VerdictRow

LABELS = "SELECT label, count(*) AS n FROM {src} GROUP BY label ORDER BY label"
LATEST = "QUALIFY row_number() OVER (PARTITION BY key ORDER BY created_at DESC, id) = 1"


def _verdicts(commit: int, batch: int, corrections: float, rng: random.Random,
              earlier: list[int] | None = None) -> list[VerdictRow]:
    """Commit ``commit``'s verdicts: new candidates, and ``corrections`` of the batch re-judging candidates of
    an earlier commit (one of ``earlier``, default every commit number below this one)."""
    first = commit == 0 if earlier is None else not earlier
    fresh = batch if first else batch - int(batch * corrections)
    ids = [f"cand-{commit}-{i}" for i in range(fresh)]
    pick = (lambda: rng.randrange(commit)) if earlier is None else (lambda: rng.choice(earlier))
    ids += [f"cand-{pick()}-{rng.randrange(fresh)}" for _ in range(batch - fresh)]  # re-judged
    return [VerdictRow(candidate_id=c, stage="judge", label=int(s >= 0.5), reason=f"理由 {commit}", agent_version="1",
                       score=s, threshold=0.5) for c in ids for s in [rng.random()]]


def _timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm: connections, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]}


def _tenths(series: list[float]) -> list[list[float]]:
    """``series`` in ten consecutive parts (fewer when shorter)."""
    n = min(10, len(series))
    return [series[i * len(series) // n:(i + 1) * len(series) // n] for i in range(n)]


def _reads(wh: Warehouse, anchor: duckdb.DuckDBPyConnection, files: str, mid: int, repeats: int) -> dict:
    last = wh.current_snapshot()
    parquet = f"read_parquet('{files}')"
    return {
        "SELECT 1 (Warehouse.sql)": _timed(lambda: wh.sql("SELECT 1"), repeats * 5),
        "labels, raw table": _timed(lambda: wh.sql(LABELS.format(src="verdicts")), repeats),
        "labels, verdicts_latest": _timed(lambda: wh.sql(LABELS.format(src="verdicts_latest")), repeats),
        "labels, as_of mid snapshot": _timed(lambda: wh.sql(LABELS.format(src="verdicts"), as_of=mid), repeats),
        "change feed, mid → current snapshot": _timed(lambda: wh.sql(
            f"SELECT count(*) FROM table_changes('verdicts', {mid}, {last})"), repeats),
        "anchor: DuckDB on Parquet, raw": _timed(lambda: anchor.execute(LABELS.format(src=parquet)).pl(), repeats),
        "anchor: DuckDB on Parquet, latest": _timed(lambda: anchor.execute(
            LABELS.format(src=f"(SELECT * FROM {parquet} {LATEST})")).pl(), repeats),
    }


def _real_stderr():
    """The process's stderr with a file descriptor, or None (faulthandler writes to a descriptor; pytest's
    captured stderr has none)."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            stream.fileno()
            return stream
        except (AttributeError, OSError, ValueError):
            continue
    return None


def _register_model(wh: Warehouse, snapshot: int) -> None:
    """A model whose lineage points at ``snapshot``: maintenance keeps it readable."""
    wh.append([ModelRow(model_id="bench-model", kind="reward", base="bench", hyperparams={}, metrics={},
                        artifact_path="-", input_snapshots={"verdicts": snapshot})], asset_key="models")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.warehouse_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="verdicts events to commit")
    parser.add_argument("--batch", type=int, default=10_000, help="events per commit (one snapshot each)")
    parser.add_argument("--corrections", type=float, default=0.1, help="share of each later commit that re-judges")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per query")
    parser.add_argument("--maintain-every", type=int, default=0,
                        help="run the maintenance job after every N commits, untimed by the commits (0 = only at the end)")
    parser.add_argument("--fold-every", type=int, default=0,
                        help="fold the superseded rows after every N commits and after the last (0 = never)")
    parser.add_argument("--retention-s", type=float, default=None,
                        help="the scheduled maintenance's snapshot retention and file grace in seconds (default: "
                        "MaintenancePolicy's, 7 days / 1 hour: nothing expires within a run)")
    parser.add_argument("--reopen", action="store_true",
                        help="close the Warehouse handle after each scheduled maintenance and open a new one (its "
                        "connections and commit index start afresh, as in a new process)")
    parser.add_argument("--home", help="warehouse home (default: a temporary directory, removed at the end)")
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument("--watchdog", type=float, default=600, help="seconds before stacks are dumped (0: never)")
    args = parser.parse_args(argv)

    watchdog_file = _real_stderr() if args.watchdog else None

    def progress(message: str) -> None:
        print(message, flush=True)
        if watchdog_file is not None:  # re-armed at every step
            faulthandler.dump_traceback_later(args.watchdog, repeat=True, file=watchdog_file)

    progress("start")

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="zhufu-scale-"))
    wh = Warehouse(WarehouseConfig.embedded(home))
    wh.migrate()
    rng = random.Random(0)
    commits = args.rows // args.batch
    commit_s, commit_cpu_s, snapshots, scheduled_s, fold_s = [], [], [], [], []
    scheduled_policy = MaintenancePolicy() if args.retention_s is None else MaintenancePolicy(
        snapshot_retention=dt.timedelta(seconds=args.retention_s), file_grace=dt.timedelta(seconds=args.retention_s))
    latest_before_fold = None
    for c in range(commits):
        events = _verdicts(c, args.batch, args.corrections, rng)
        start, cpu = time.perf_counter(), time.process_time()
        snapshots.append(wh.append(events, run_id=f"bench-{c}", asset_key="verdicts").snapshot_id)
        commit_s.append(time.perf_counter() - start)
        commit_cpu_s.append(time.process_time() - cpu)  # this process's CPU, DuckDB's threads included: what a
        # busy host's steal time does not inflate (the lent 2-core machine's commits wander ±30% within minutes)
        if c % 10 == 0 or c == commits - 1:
            progress(f"commit {c + 1}/{commits}: {commit_s[-1]:.3f} s")
        if args.retention_s is not None and c == commits // 2:  # expiring within the run: pin the mid snapshot now
            _register_model(wh, snapshots[c])
        if args.maintain_every and (c + 1) % args.maintain_every == 0 and c < commits - 1:
            start = time.perf_counter()
            phases = maintain(wh, scheduled_policy).seconds
            scheduled_s.append(time.perf_counter() - start)
            progress(f"maintenance after commit {c + 1}: {scheduled_s[-1]:.2f} s {phases}")
            if args.reopen:
                wh.close()
                wh = Warehouse(WarehouseConfig.embedded(home))
        if args.fold_every and ((c + 1) % args.fold_every == 0 or c == commits - 1):
            if c == commits - 1:  # the window a read can fall in: after a commit, before its fold
                latest_before_fold = _timed(lambda w=wh: w.sql(LABELS.format(src="verdicts_latest")), args.repeats)
            start = time.perf_counter()
            fold(wh)
            fold_s.append(time.perf_counter() - start)
    rows = wh.count("verdicts")
    files = f"{wh.config.data_path}main/verdicts/*.parquet"
    anchor = duckdb.connect()
    mid = snapshots[len(snapshots) // 2]
    progress("reads before maintenance")
    before = _reads(wh, anchor, files, mid, args.repeats)
    # a model trained on the mid snapshot: maintenance must keep that snapshot readable
    if args.retention_s is None:
        _register_model(wh, mid)

    progress("final maintenance")
    start = time.perf_counter()
    report = maintain(wh, MaintenancePolicy(snapshot_retention=dt.timedelta(0), file_grace=dt.timedelta(0)))
    maintenance_s = time.perf_counter() - start
    progress(f"final maintenance: {maintenance_s:.1f} s {report.seconds}")
    # every snapshot expired but the current one and the model's lineage snapshot
    after = _reads(wh, anchor, files, mid, args.repeats)
    verdict_files = int(wh.sql("SELECT count(*) AS n FROM ducklake_list_files('lake', 'verdicts')")["n"][0])

    n = min(5, len(commit_s))
    table = [["commits × rows", f"{commits} × {args.batch:,}", ""],
             ["verdicts rows / latest rows", f"{rows:,} / {wh.count('verdicts_latest'):,}", ""],
             [f"commit s per {args.batch:,} rows: first / last", f"{commit_s[0]:.3f} / {commit_s[-1]:.3f}", ""],
             [f"commit s: mean of first {n} / last {n}",
              f"{statistics.mean(commit_s[:n]):.3f} / {statistics.mean(commit_s[-n:]):.3f}", ""]]
    for name, series in (("commit s (wall)", commit_s), ("commit CPU s", commit_cpu_s)):
        tenths = [statistics.mean(part) for part in _tenths(series)]
        medians = [statistics.median(part) for part in _tenths(series)]
        table.append([f"{name}, mean of each tenth", " ".join(f"{t:.3f}" for t in tenths), ""])
        table.append([f"{name}: first → last tenth, mean; median",
                      f"{tenths[-1] / tenths[0] - 1:+.0%}; {medians[-1] / medians[0] - 1:+.0%}", ""])
    if fold_s:
        tenth = max(1, len(fold_s) // 10)
        table.append([f"fold (every {args.fold_every} commits) s: mean of first / last tenth / max",
                      f"{statistics.mean(fold_s[:tenth]):.3f} / {statistics.mean(fold_s[-tenth:]):.3f} / "
                      f"{max(fold_s):.3f}", ""])
        table.append(["labels, verdicts_latest after the last commit, before its fold: p50 / p95 ms",
                      f"{latest_before_fold['p50_ms']:.2f} / {latest_before_fold['p95_ms']:.2f}", ""])
    if scheduled_s:
        table.append([f"scheduled maintenance (every {args.maintain_every} commits) s: first / last / mean",
                      f"{scheduled_s[0]:.2f} / {scheduled_s[-1]:.2f} / {statistics.mean(scheduled_s):.2f}", ""])
    for name in before:
        b, a = before[name], after[name]
        table.append([f"{name}: p50 / p95 ms", f"{b['p50_ms']:.2f} / {b['p95_ms']:.2f}",
                      f"{a['p50_ms']:.2f} / {a['p95_ms']:.2f}"])
    rb, ra = report.before, report.after
    table += [["Parquet files on disk (all tables)", f"{rb.disk_files:,}", f"{ra.disk_files:,}"],
              ["bytes on disk", f"{rb.disk_bytes:,}", f"{ra.disk_bytes:,}"],
              ["live data files (all tables) / verdicts", f"{rb.live_files:,}", f"{ra.live_files:,} / {verdict_files}"],
              ["snapshots", f"{rb.snapshots:,}", f"{ra.snapshots:,}"],
              ["maintenance s", "", f"{maintenance_s:.1f}"],
              ["commit index (ZHUFU_COMMIT_INDEX)", "on" if commit_index.enabled() else "off", ""]]
    print(tabulate(table, headers=["", "before maintenance", "after maintenance"], tablefmt="github"))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "rows": rows, "commits": commits, "batch": args.batch, "commit_s": commit_s, "commit_cpu_s": commit_cpu_s,
            "before": before,
            "maintain_every": args.maintain_every, "scheduled_maintenance_s": scheduled_s, "retention_s": args.retention_s,
            "reopen": args.reopen,
            "fold_every": args.fold_every, "fold_s": fold_s, "latest_before_last_fold": latest_before_fold,
            "after": after, "maintenance": report.as_dict(), "maintenance_s": maintenance_s,
            "verdict_files_after": verdict_files, "commit_index": commit_index.enabled()}, indent=2))
    faulthandler.cancel_dump_traceback_later()
    wh.close()
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
