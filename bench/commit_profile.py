"""Where a commit's time goes: every SQL statement of a few commits, timed (issue 15).

    python -m bench.warehouse_scale --rows 2000000 --maintain-every 20 --home /tmp/wh2m   # a warehouse to profile
    python -m bench.commit_profile --home /tmp/wh2m --commits 5
    python -m bench.commit_profile --home /tmp/wh2m --commits 100   # what grows between two maintenance runs
    python -m bench.commit_profile --home /tmp/new --commits 1000 --first 0 --maintain-every 100   # 0 → 10 M rows

Commits ``--commits`` more batches of ``verdicts`` (the scale bench's mix: ``--batch`` rows, ``--corrections``
of them re-judging candidates already stored — the bench's and this profile's own) through ``Warehouse.append``
on the warehouse at ``--home``, with every statement of ``warehouse.store`` timed, and prints one line per
distinct statement: mean ms per commit, over the first and the last tenth of the commits too, calls, share of
the commit; and the time spent outside SQL (building rows and Arrow tables, the commit index). Events are built
before each commit's clock starts, as in the scale bench. The first commit is left out (cold caches, and the
write connection's opening, which later commits reuse). It adds rows: profile a copy, not a warehouse you keep.
"""

from __future__ import annotations

import argparse
import collections
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tabulate import tabulate

import warehouse.writer as writer
from bench.warehouse_scale import _verdicts
from warehouse import Warehouse, WarehouseConfig
from warehouse.maintenance import MaintenancePolicy, maintain

OUTSIDE_SQL = "<outside SQL: rows, Arrow tables, commit index>"


class _TimedConnection:
    """A DuckDB connection whose ``execute`` adds its wall time to ``times[statement]``."""

    def __init__(self, con: Any, times: dict[str, list[float]]):
        self._con, self._times = con, times

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self._con.execute(sql, *args, **kwargs)
        self._times[" ".join(sql.split())].append((time.perf_counter() - start) * 1000)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@contextmanager
def timed_statements() -> Iterator[dict[str, list[float]]]:
    """While open, the write connection a Warehouse opens is timed statement by statement."""
    times: dict[str, list[float]] = collections.defaultdict(list)  # cleared by the caller per commit
    real: Callable[..., Any] = writer.open_connection

    def opener(*args: Any, **kwargs: Any) -> _TimedConnection:
        start = time.perf_counter()
        con = real(*args, **kwargs)
        times["<open the write connection>"].append((time.perf_counter() - start) * 1000)
        return _TimedConnection(con, times)

    writer.open_connection = opener
    try:
        yield times
    finally:
        writer.open_connection = real


def _stored_commits(wh: Warehouse) -> list[int]:
    """The commit numbers whose candidates the warehouse holds (the bench's ids are ``cand-<commit>-<i>``)."""
    return sorted(wh.sql("SELECT DISTINCT CAST(split_part(candidate_id, '-', 2) AS BIGINT) AS c FROM verdicts "
                         "WHERE candidate_id LIKE 'cand-%'")["c"].to_list())


def profile(home: str, commits: int, batch: int, corrections: float, first: int,
            maintain_every: int = 0) -> tuple[list[dict], list[float]]:
    """Per statement: ms per commit overall and over the first and last tenth of the commits; and each commit's ms.
    Commit numbers start at ``first`` (new candidate ids); corrections re-judge the bench's candidates and these.
    ``maintain_every`` > 0 runs the maintenance job (default policy) after every that many commits, untimed."""
    wh = Warehouse(WarehouseConfig.embedded(home))
    wh.migrate()
    rng = random.Random(first)
    earlier = _stored_commits(wh)
    commit_ms: list[float] = []
    per_commit: list[dict[str, float]] = []
    with timed_statements() as times:
        for c in range(first, first + commits + 1):
            events = _verdicts(c, batch, corrections, rng, earlier=earlier)
            times.clear()
            start = time.perf_counter()
            wh.append(events, run_id=f"profile-{c}", asset_key="verdicts")
            if c > first:  # the first commit warms caches: not counted
                commit_ms.append((time.perf_counter() - start) * 1000)
                per_commit.append({sql: sum(ms) for sql, ms in times.items()})
                per_commit[-1][OUTSIDE_SQL] = commit_ms[-1] - sum(per_commit[-1].values())
            earlier.append(c)
            if maintain_every and (c - first + 1) % maintain_every == 0:
                maintain(wh, MaintenancePolicy())
    tenth = max(1, commits // 10)
    total = sum(commit_ms) / commits
    rows = []
    for sql in {k for d in per_commit for k in d}:
        ms = [d.get(sql, 0.0) for d in per_commit]
        rows.append({"statement": sql, "ms per commit": sum(ms) / commits,
                     "first tenth": sum(ms[:tenth]) / tenth, "last tenth": sum(ms[-tenth:]) / tenth,
                     "calls": sum(1 for d in per_commit if sql in d), "share": sum(ms) / commits / total})
    return sorted(rows, key=lambda r: -r["ms per commit"]), commit_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commit_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="the warehouse to profile (rows are added to it)")
    parser.add_argument("--commits", type=int, default=5, help="commits timed (after one warm-up commit)")
    parser.add_argument("--batch", type=int, default=10_000, help="events per commit")
    parser.add_argument("--corrections", type=float, default=0.1, help="share of each commit that re-judges")
    parser.add_argument("--first", type=int, default=100_000,
                        help="commit number of the first batch (candidate ids are new above the bench's)")
    parser.add_argument("--maintain-every", type=int, default=0,
                        help="run the maintenance job after every N commits, untimed (as bench.warehouse_scale does)")
    args = parser.parse_args(argv)
    rows, commit_ms = profile(args.home, args.commits, args.batch, args.corrections, args.first, args.maintain_every)
    tenth = max(1, len(commit_ms) // 10)
    print(f"commit ms: mean {sum(commit_ms) / len(commit_ms):.1f} over {len(commit_ms)} commits; first tenth "
          f"{sum(commit_ms[:tenth]) / tenth:.1f}, last tenth {sum(commit_ms[-tenth:]) / tenth:.1f}")
    print(tabulate([[r["statement"][:100], f"{r['ms per commit']:.1f}", f"{r['first tenth']:.1f}",
                     f"{r['last tenth']:.1f}", r["calls"], f"{r['share']:.0%}"] for r in rows],
                   headers=["statement", "ms per commit", "first tenth", "last tenth", "commits", "share"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
