"""The commit index's in-memory work per commit, apart from DuckLake (issue 15).

    python -m bench.commit_index_ops [--commits 1000] [--batch 10000] [--corrections 0.1] [--no-filter]
                                     [--compact-every 100] [--merge-limit N]

Replays what a commit asks of ``warehouse.commit_index.SortedRuns`` for one table — are the batch's new ids
stored (``ids.contains``), which live projection rows do its keys touch (``rows.find``), then add the ids, mark
the touched rows dead and add the new rows — with random 60-bit keys, a share of each later batch correcting
keys of the last 50 batches (as ``bench.warehouse_scale`` does). Prints each operation's mean ms per tenth of the
commits: what grows with the table's size. ``--no-filter`` leaves the membership filter out (every lookup searches
every run), for the comparison. ``--compact-every N`` runs ``SortedRuns.compact`` after every N-th commit, untimed (the
maintenance job does, between commits); ``--merge-limit`` sets how large a merge a commit still does itself
(0: every merge in the commit, as before the limit).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from tabulate import tabulate

from warehouse.commit_index import SortedRuns

OPS = ("ids.contains", "rows.find", "ids.add", "rows.delete", "rows.add")


def run(commits: int, batch: int, corrections: float, use_filter: bool = True, seed: int = 0,
        compact_every: int = 0, merge_limit: int | None = None) -> dict[str, list[float]]:
    """Seconds per commit for each operation."""
    rng = np.random.default_rng(seed)
    limit = {} if merge_limit is None else {"merge_limit": merge_limit or 2**62}
    ids, rows = SortedRuns(**limit), SortedRuns(payload=("key_lo", "rowid", "created_us"), **limit)
    if not use_filter:  # a filter that lets every key through
        for r in (ids, rows):
            r.may_contain = lambda keys: np.ones(len(keys), dtype=bool)  # type: ignore[method-assign]
    recent: list[np.ndarray] = []
    next_rowid = 0
    t: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        t[name].append(time.perf_counter() - start)
        return out

    for c in range(commits):
        new_ids = rng.integers(0, 2**60, batch)
        n_corr = int(batch * corrections) if recent else 0
        fresh = rng.integers(0, 2**60, batch - n_corr)
        keys = np.concatenate([rng.choice(np.concatenate(recent[-50:]), n_corr), fresh]) if n_corr else fresh
        timed("ids.contains", ids.contains, new_ids)
        found = timed("rows.find", rows.find, np.unique(keys))
        timed("ids.add", ids.add, new_ids)
        timed("rows.delete", rows.delete, found["key"], found["rowid"])
        rowids = np.arange(next_rowid, next_rowid + len(keys))
        timed("rows.add", rows.add, keys, key_lo=keys, rowid=rowids, created_us=np.zeros(len(keys), np.int64))
        next_rowid += len(keys)
        recent.append(fresh)
        if compact_every and (c + 1) % compact_every == 0:
            ids.compact()
            rows.compact()
    return dict(t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.commit_index_ops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commits", type=int, default=1000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--corrections", type=float, default=0.1)
    p.add_argument("--no-filter", action="store_true", help="every lookup searches every run")
    p.add_argument("--compact-every", type=int, default=0, help="compact the runs after every N-th commit, untimed")
    p.add_argument("--merge-limit", type=int, default=None,
                   help="largest merge a commit does itself (default: the index's; 0: no limit)")
    a = p.parse_args(argv)
    t = run(a.commits, a.batch, a.corrections, use_filter=not a.no_filter, compact_every=a.compact_every,
            merge_limit=a.merge_limit)
    parts = min(10, a.commits)
    tenths = {k: [float(np.mean(x)) * 1000 for x in np.array_split(np.array(v), parts)] for k, v in t.items()}
    total = [sum(tenths[k][i] for k in OPS) for i in range(parts)]
    rows = [[k, *tenths[k]] for k in OPS] + [["total", *total]]
    print(f"ms per commit of {a.batch:,} rows, mean of each tenth of {a.commits} commits "
          f"({'no filter' if a.no_filter else 'filter'}, merge limit {a.merge_limit if a.merge_limit is not None else 'default'}, "
          f"compact every {a.compact_every or 'never'})")
    print(tabulate(rows, headers=["op", *[str(i + 1) for i in range(parts)]], floatfmt=".1f", tablefmt="github"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
