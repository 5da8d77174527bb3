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
