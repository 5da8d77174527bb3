"""bench.commit_index_ops: every operation of every replayed commit is timed, with the filter and without."""

from bench import commit_index_ops


def test_the_ops_bench_times_each_operation_of_each_commit_with_and_without_the_filter(capsys):
    for use_filter in (True, False):
        t = commit_index_ops.run(commits=12, batch=200, corrections=0.1, use_filter=use_filter)
        assert set(t) == set(commit_index_ops.OPS) and all(len(v) == 12 for v in t.values())
    assert commit_index_ops.main(["--commits", "12", "--batch", "200", "--no-filter"]) == 0
    out = capsys.readouterr().out
    assert "no filter" in out and "total" in out
