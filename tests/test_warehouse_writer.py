"""Commits reuse one write connection per warehouse handle, yet each sees what other processes committed,
merged and deleted since the last one; an error drops the connection, and the next commit opens a new one."""

from __future__ import annotations

import duckdb
import pytest

import warehouse.writer as writer_module
from tests.test_warehouse_readers import _in_another_process, _prompts
from warehouse import Warehouse


@pytest.fixture
def opened(monkeypatch) -> list[int]:
    """One entry per write connection opened."""
    calls: list[int] = []
    real = writer_module.open_connection

    def counting(config, **kwargs):
        calls.append(1)
        return real(config, **kwargs)

    monkeypatch.setattr(writer_module, "open_connection", counting)
    return calls


def test_commits_reuse_one_write_connection(wh, opened):
    for n in range(5):
        assert wh.append(_prompts(f"祝福 {n}")).tables["prompts"].added == 1
    assert len(opened) == 1 and wh.count("prompts") == 5


def test_a_kept_write_connection_sees_other_processes_commits_and_compaction(wh, zhufu_home, opened):
    wh.append(_prompts("中秋"))
    # another process stores 元宵 and then merges the files and deletes the ones this connection last saw
    _in_another_process(zhufu_home, "wh.append([PromptRow(text='元宵', source='t', source_ref='r', batch='b')])\n"
                                    "con = open_connection(wh.config)\n"
                                    "con.execute(\"CALL ducklake_merge_adjacent_files('lake')\").fetchall()\n"
                                    "con.execute(\"CALL ducklake_cleanup_old_files('lake', cleanup_all => true)\")"
                                    ".fetchall()")
    result = wh.append(_prompts("元宵", "端午"))  # 元宵 is already stored: the dedup sees the other commit
    assert result.tables["prompts"].added == 1 and len(opened) == 1
    assert sorted(wh.sql("SELECT text FROM prompts_latest")["text"]) == sorted(["中秋", "元宵", "端午"])
    assert wh.count("prompts") == 3


def test_a_failed_commit_drops_the_connection_and_the_next_opens_a_new_one(wh, opened, monkeypatch):
    wh.append(_prompts("春节"))
    real = Warehouse._commit_once

    def failing(self, con, *args):
        con.execute("BEGIN")  # the error strikes mid-transaction: the connection's state is not to be trusted
        raise duckdb.InvalidInputException("a broken batch")

    monkeypatch.setattr(Warehouse, "_commit_once", failing)
    with pytest.raises(duckdb.InvalidInputException, match="a broken batch"):
        wh.append(_prompts("清明"))
    monkeypatch.setattr(Warehouse, "_commit_once", real)
    assert wh.append(_prompts("春节", "清明")).tables["prompts"].added == 1
    assert len(opened) == 2 and wh.count("prompts") == 2


def test_a_kept_connection_that_went_stale_is_replaced_before_the_commit(wh, opened):
    wh.append(_prompts("立春"))
    wh.writer._con.close()  # as a catalog server that dropped an idle connection would leave it
    assert wh.append(_prompts("雨水")).tables["prompts"].added == 1
    assert len(opened) == 2 and wh.count("prompts") == 2
