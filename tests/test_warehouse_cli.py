"""The read-only SQL CLI: answers queries, time-travels, and refuses writes with a clear error."""

import json
import os
import subprocess
import sys

import pytest

from warehouse.cli import check_read_only, main
from warehouse.errors import ReadOnlyError
from warehouse.schema import PromptRow


def _seed(wh):
    s1 = wh.append([PromptRow(text="春节祝福", source="t", source_ref="a", batch="b")], asset_key="prompts").snapshot_id
    wh.append([PromptRow(text="中秋祝福", source="t", source_ref="b", batch="b")], asset_key="prompts")
    return s1


def test_sql_answers_in_every_format(wh, capsys):
    _seed(wh)
    assert main(["sql", "SELECT count(*) AS n FROM prompts", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]
    assert main(["sql", "SELECT text FROM prompts ORDER BY text", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["text", "中秋祝福", "春节祝福"]
    assert main(["sql", "SELECT count(*) AS n FROM prompts"]) == 0
    assert "2" in capsys.readouterr().out


def test_as_of_reads_an_earlier_snapshot(wh, capsys):
    s1 = _seed(wh)
    assert main(["sql", "--as-of", str(s1), "--format", "json", "SELECT count(*) AS n FROM prompts"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]


def test_snapshots_lists_run_and_asset(wh, capsys):
    _seed(wh)
    assert main(["snapshots", "--format", "json"]) == 0
    snaps = json.loads(capsys.readouterr().out)
    assert [s["asset_key"] for s in snaps if s["asset_key"]] == ["prompts", "prompts"]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO prompts (id) VALUES ('x')",
        "DELETE FROM prompts",
        "UPDATE prompts SET text = 'x'",
        "DROP TABLE prompts",
        "CREATE TABLE memory.t AS SELECT 1",
        "COPY prompts TO '/tmp/out.csv'",
        "SELECT 1; DELETE FROM prompts",
        "ATTACH 'x.db' AS x",
    ],
)
def test_writes_are_refused(statement):
    with pytest.raises(ReadOnlyError, match="read-only"):
        check_read_only(statement)


def test_a_refused_write_exits_2_with_a_message_and_changes_nothing(wh, zhufu_home):
    _seed(wh)
    env = {**os.environ, "ZHUFU_HOME": str(zhufu_home)}
    proc = subprocess.run([sys.executable, "-m", "warehouse", "sql", "DELETE FROM prompts"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "read-only" in proc.stderr and "DELETE" in proc.stderr
    assert wh.count("prompts") == 2
