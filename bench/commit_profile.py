"""Where a commit's time goes: every SQL statement of a few commits, timed (issue 15).

    python -m bench.warehouse_scale --rows 2000000 --maintain-every 20 --home /tmp/wh2m   # a warehouse to profile
    python -m bench.commit_profile --home /tmp/wh2m --commits 5

Commits ``--commits`` more batches of ``verdicts`` (the scale bench's mix: ``--batch`` rows, ``--corrections``
of them re-judging earlier candidates) through ``Warehouse.append`` on the warehouse at ``--home``, with every
statement of ``warehouse.store`` timed, and prints one line per distinct statement: mean ms per commit, calls,
share of the commit. The first commit is left out (cold caches, and the write connection's opening, which later
commits reuse). It adds rows: profile a copy, not a warehouse you keep.
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
    times: dict[str, list[float]] = collections.defaultdict(list)
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


def profile(home: str, commits: int, batch: int, corrections: float, first: int) -> tuple[list[dict], list[float]]:
    wh = Warehouse(WarehouseConfig.embedded(home))
    wh.migrate()
    rng = random.Random(first)
    commit_ms: list[float] = []
    with timed_statements() as times:
        for c in range(first, first + commits + 1):
            if c == first + 1:
                times.clear()  # the first commit warms caches: not counted
                commit_ms.clear()
            start = time.perf_counter()
            wh.append(_verdicts(c, batch, corrections, rng), run_id=f"profile-{c}", asset_key="verdicts")
            commit_ms.append((time.perf_counter() - start) * 1000)
    total = sum(commit_ms) / len(commit_ms)
    rows = [{"statement": sql, "ms per commit": sum(ms) / commits, "calls": len(ms),
             "share": sum(ms) / commits / total} for sql, ms in times.items()]
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
    args = parser.parse_args(argv)
    rows, commit_ms = profile(args.home, args.commits, args.batch, args.corrections, args.first)
    print(f"commit ms: mean {sum(commit_ms) / len(commit_ms):.1f} over {len(commit_ms)} commits")
    print(tabulate([[r["statement"][:100], f"{r['ms per commit']:.1f}", r["calls"], f"{r['share']:.0%}"] for r in rows],
                   headers=["statement", "ms per commit", "calls", "share"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
