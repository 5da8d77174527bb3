"""The read-only SQL CLI: answers queries, time-travels, and refuses writes with a clear error."""

import json
import os
import subprocess
import sys

import duckdb
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


# ---------------------------------------------------------------- the sandbox: bypasses a user might try


@pytest.fixture
def planted(tmp_path):
    """A file outside the lake whose contents must never come back."""
    path = tmp_path / "outside" / "secret.csv"
    path.parent.mkdir()
    path.write_text("name,value\nplanted,PLANTED-CONTENTS\n", encoding="utf-8")
    return path


def _cli(zhufu_home, query):
    env = {**os.environ, "ZHUFU_HOME": str(zhufu_home)}
    return subprocess.run([sys.executable, "-m", "warehouse", "sql", query], capture_output=True, text=True, env=env)


def test_explain_analyze_copy_writes_no_file(wh, zhufu_home, tmp_path):
    _seed(wh)
    for target in (tmp_path / "x.csv", wh.config.data_path + "x.csv"):
        proc = _cli(zhufu_home, f"EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '{target}'")
        assert proc.returncode != 0 and "read-only" in proc.stderr
        assert not os.path.exists(target)
    # the sandbox holds even if the statement check were passed: no file outside the lake is written
    con = wh.connect(sandboxed=True)
    try:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '{tmp_path / 'y.csv'}'")
    finally:
        con.close()
    assert not (tmp_path / "y.csv").exists()


@pytest.mark.parametrize("reader", ["read_text('{p}')", "read_csv('{p}')", "read_blob('{p}')", "glob('{d}/*')",
                                    "read_text('{lake}../../outside/secret.csv')", "read_csv('/etc/passwd')"])
def test_files_outside_the_lake_cannot_be_read(wh, zhufu_home, planted, capsys, reader):
    _seed(wh)
    query = "SELECT * FROM " + reader.format(p=planted, d=planted.parent, lake=wh.config.data_path)
    assert main(["sql", query]) == 1
    captured = capsys.readouterr()
    assert "PLANTED" not in captured.out + captured.err and "root:" not in captured.out
    assert "Permission" in captured.err


@pytest.mark.parametrize("statement", [
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET lock_configuration = false",
    "ATTACH '{tmp}/other.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "COPY (SELECT 1) TO '{tmp}/z.csv'",
])
def test_a_sandboxed_connection_cannot_be_reopened(wh, tmp_path, planted, statement):
    """Each of these is refused by the CLI's statement check; the sandbox refuses them as well."""
    _seed(wh)
    with pytest.raises(ReadOnlyError):
        check_read_only(statement.format(tmp=tmp_path))
    con = wh.connect(sandboxed=True)
    try:
        with pytest.raises(duckdb.Error):
            con.execute(statement.format(tmp=tmp_path))
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_text('{planted}')")
        assert con.execute("SELECT count(*) FROM prompts").fetchone() == (2,)
    finally:
        con.close()
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "z.csv").exists()


def test_reads_time_travel_and_change_feed_still_work_in_the_sandbox(wh, capsys):
    s1 = _seed(wh)
    s2 = wh.current_snapshot()
    queries = {
        "SELECT count(*) AS n FROM prompts": [{"n": 2}],
        f"SELECT count(*) AS n FROM prompts AT (VERSION => {s1})": [{"n": 1}],
        f"SELECT count(*) AS n FROM table_changes('prompts', {s1}, {s2})": [{"n": 2}],
        "EXPLAIN ANALYZE SELECT count(*) AS n FROM prompts": None,
    }
    for query, expected in queries.items():
        assert main(["sql", "--format", "json", query]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        if expected is not None:
            assert json.loads(out) == expected
    assert main(["sql", "--as-of", str(s1), "--format", "json", "SELECT count(*) AS n FROM prompts_latest"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]


def test_the_python_api_is_not_sandboxed(wh, planted):
    """Assets read files through Warehouse.sql (e.g. a staged export); only the CLI path is confined."""
    _seed(wh)
    assert wh.sql(f"SELECT count(*) AS n FROM read_csv('{planted}')")["n"][0] == 1
