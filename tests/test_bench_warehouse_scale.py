"""bench.warehouse_scale end to end at a toy size: commits, reads before and after maintenance, and the
scheduled maintenance between commits timed apart from them."""

import json

from bench import warehouse_scale


def test_the_scale_bench_runs_the_scheduled_maintenance_between_commits_and_reports_it(tmp_path):
    out = tmp_path / "scale.json"
    assert warehouse_scale.main(["--rows", "300", "--batch", "100", "--maintain-every", "1", "--repeats", "1",
                                 "--home", str(tmp_path / "wh"), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["commits"] == 3 and len(rep["commit_s"]) == 3
    assert len(rep["scheduled_maintenance_s"]) == 2  # after commits 1 and 2, not after the last
    assert rep["rows"] == 300 and rep["verdict_files_after"] >= 1


def test_the_scale_bench_folds_after_every_n_commits_and_the_last_and_times_the_read_before(tmp_path):
    out = tmp_path / "scale.json"
    assert warehouse_scale.main(["--rows", "500", "--batch", "100", "--fold-every", "2", "--repeats", "1",
                                 "--home", str(tmp_path / "wh"), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert len(rep["fold_s"]) == 3  # after commits 2 and 4, and the last (5)
    assert rep["latest_before_last_fold"]["p50_ms"] > 0
    assert rep["maintenance"]["folded_rows"] == {}  # the last fold left the final maintenance nothing to fold


def test_the_commit_profile_times_every_statement_of_a_commit(tmp_path, capsys):
    from bench import commit_profile

    home = str(tmp_path / "wh")
    assert warehouse_scale.main(["--rows", "200", "--batch", "100", "--repeats", "1", "--home", home]) == 0
    rows, commit_ms = commit_profile.profile(home, commits=2, batch=100, corrections=0.2, first=1000)
    assert len(commit_ms) == 2
    statements = {r["statement"] for r in rows}
    assert "<open the write connection>" not in statements  # opened by the warm-up commit, reused after
    # the id dedup: in memory with the commit index (the default), the stored ids read without it
    assert any("INSERT INTO verdicts_ids" in s for s in statements)
    assert any("verdicts_current" in s for s in statements)  # the projection's upkeep
    # the corrections re-judge stored candidates (the bench's), so they supersede projection rows
    assert any(s.startswith("INSERT INTO verdicts_superseded") for s in statements)
    assert commit_profile.OUTSIDE_SQL in statements
    assert all(r["calls"] == 2 and r["last tenth"] > 0 for r in rows if r["statement"] == "COMMIT")
    assert commit_profile.main(["--home", home, "--commits", "1", "--batch", "50", "--first", "2000"]) == 0
    assert "ms per commit" in capsys.readouterr().out


def test_the_scale_bench_expires_snapshots_within_the_run_keeping_the_mid_one_and_can_reopen(tmp_path):
    out = tmp_path / "scale.json"
    assert warehouse_scale.main(["--rows", "500", "--batch", "100", "--maintain-every", "2", "--retention-s", "0",
                                 "--reopen", "--repeats", "1", "--home", str(tmp_path / "wh"),
                                 "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["retention_s"] == 0 and rep["reopen"] is True and len(rep["commit_s"]) == 5
    assert rep["before"]["labels, as_of mid snapshot"]["p50_ms"] > 0  # pinned by the model registered mid-run


def test_the_commit_profile_can_build_from_empty_with_maintenance_between_commits(tmp_path):
    from bench import commit_profile

    rows, commit_ms = commit_profile.profile(str(tmp_path / "wh"), commits=4, batch=50, corrections=0.1, first=0,
                                             maintain_every=2)
    assert len(commit_ms) == 4 and any(r["statement"] == "COMMIT" for r in rows)
    assert all("ducklake_merge_adjacent_files" not in r["statement"] for r in rows)  # maintenance is not timed
