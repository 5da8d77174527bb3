"""Read connections live as long as the process: reused across calls and threads, yet every read
sees what this process and every other process committed, and no reader holds up a writer."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import warehouse.connection as connection
import warehouse.readers as readers_module
from resources import WarehouseResource
from resources.warehouse import close_warehouses
from warehouse.schema import PromptRow

ROOT = Path(__file__).resolve().parents[1]


def _prompts(*texts: str) -> list[PromptRow]:
    return [PromptRow(text=t, source="t", source_ref="r", batch="b") for t in texts]


def _in_another_process(home: Path, code: str) -> None:
    """Run ``code`` (with ``wh``, ``PromptRow`` and ``open_connection`` in scope) in a new process."""
    prelude = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
               "from warehouse import Warehouse, WarehouseConfig\nfrom warehouse.schema import PromptRow\n"
               "from warehouse.connection import open_connection\n"
               f"wh = Warehouse(WarehouseConfig.embedded({str(home)!r}))\n")
    subprocess.run([sys.executable, "-c", prelude + code], check=True, timeout=120)


@pytest.fixture
def opened(monkeypatch) -> list[tuple[int | None, bool]]:
    """Every read connection the pool opened, as (as_of, sandboxed) (not a failed attempt on a lake
    that does not exist yet)."""
    calls: list[tuple[int | None, bool]] = []
    real = readers_module.open_connection

    def counting(config, *, read_only=False, snapshot=None, sandboxed=False):
        con = real(config, read_only=read_only, snapshot=snapshot, sandboxed=sandboxed)
        calls.append((snapshot, sandboxed))
        return con

    monkeypatch.setattr(readers_module, "open_connection", counting)
    return calls


def test_repeated_reads_reuse_one_connection(wh, opened):
    wh.append(_prompts("春节"))
    for _ in range(20):
        assert wh.sql("SELECT 1 AS x")["x"][0] == 1
        assert wh.count("prompts") == 1
    assert opened == [(None, False)]


def test_a_cached_reader_sees_this_process_commits_without_reopening(wh, opened):
    assert wh.count("prompts") == 0
    for n in range(1, 4):
        wh.append(_prompts(f"祝福 {n}"))
        assert wh.count("prompts") == n
    assert opened == [(None, False)]


def test_a_cached_reader_sees_other_processes_rows_tables_and_compaction(wh, zhufu_home):
    wh.append(_prompts("中秋"))
    assert wh.count("prompts") == 1
    _in_another_process(zhufu_home, "wh.append([PromptRow(text=t, source='t', source_ref='r', batch='b') "
                                    "for t in ('元宵', '端午')])")
    assert wh.count("prompts") == 3
    _in_another_process(zhufu_home, "con = open_connection(wh.config)\n"
                                    "con.execute('CREATE TABLE scratch AS SELECT 42 AS answer')\n"
                                    "con.execute(\"CALL ducklake_merge_adjacent_files('lake')\").fetchall()\n"
                                    "con.execute(\"CALL ducklake_cleanup_old_files('lake', cleanup_all => true)\")"
                                    ".fetchall()")
    assert wh.sql("SELECT answer FROM scratch")["answer"].to_list() == [42]
    # the files it read before were merged and deleted: it reads the new ones
    assert sorted(wh.sql("SELECT text FROM prompts")["text"]) == sorted(["中秋", "元宵", "端午"])


def test_a_cached_reader_does_not_block_writers(wh, zhufu_home):
    wh.append(_prompts("国庆"))
    assert wh.count("prompts") == 1 and wh.sql("SELECT * FROM prompts_latest").height == 1
    catalog = sqlite3.connect(zhufu_home / "lake" / "catalog.sqlite", timeout=0.5, isolation_level=None)
    busy, _, _ = catalog.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()  # busy while a read is open
    catalog.close()
    assert busy == 0
    _in_another_process(zhufu_home, "wh.append([PromptRow(text='重阳', source='t', source_ref='r', batch='b')])")
    assert wh.count("prompts") == 2


def test_time_travel_and_sandboxed_reads_keep_working_on_cached_connections(wh, tmp_path, opened):
    first = wh.append(_prompts("一")).snapshot_id
    wh.append(_prompts("二", "三"))
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n", encoding="utf-8")
    for _ in range(3):
        assert wh.sql("SELECT count(*) AS n FROM prompts", as_of=first)["n"][0] == 1
        assert wh.sql("SELECT count(*) AS n FROM prompts", sandboxed=True)["n"][0] == 3
        assert wh.sql(f"SELECT count(*) AS n FROM read_csv('{outside}')")["n"][0] == 1
        with pytest.raises(Exception, match="Permission"):
            wh.sql(f"SELECT * FROM read_csv('{outside}')", sandboxed=True)
    assert sorted(opened, key=str) == sorted([(first, False), (None, True), (None, False)], key=str)


def test_threads_read_at_once_each_on_its_own_cursor(wh, opened):
    wh.append(_prompts(*[f"生日 {i}" for i in range(10)]))
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                assert wh.sql("SELECT count(*) AS n FROM prompts_latest")["n"][0] == 10
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and opened == [(None, False)]


def test_only_a_few_snapshot_connections_stay_open(wh):
    snapshots = [wh.append(_prompts(f"第{i}")).snapshot_id for i in range(6)]
    for i, s in enumerate(snapshots):
        assert wh.sql("SELECT count(*) AS n FROM prompts", as_of=s)["n"][0] == i + 1
    assert len(wh.readers) <= wh.readers.max_snapshots + 1


def test_closing_releases_the_connections_and_reads_reopen(wh, opened):
    wh.append(_prompts("新年"))
    assert wh.count("prompts") == 1
    wh.close()
    assert len(wh.readers) == 0
    assert wh.count("prompts") == 1
    assert opened == [(None, False), (None, False)]


def test_the_resource_keeps_one_warehouse_whose_connections_close_at_exit(zhufu_home, opened):
    first = WarehouseResource(home=str(zhufu_home)).get()
    first.append(_prompts("元旦"))
    assert WarehouseResource(home=str(zhufu_home)).get().count("prompts") == 1  # a new resource, as per tick
    assert first.count("prompts") == 1 and opened == [(None, False)]
    close_warehouses()  # registered with atexit
    assert len(first.readers) == 0


def test_a_warehouse_pickles_without_its_connections(wh):
    import pickle

    wh.append(_prompts("端午"))
    copy = pickle.loads(pickle.dumps(wh))
    assert copy.config == wh.config and copy.count("prompts") == 1


def test_a_forked_child_opens_its_own_connection(wh):
    wh.append(_prompts("七夕"))
    assert wh.count("prompts") == 1
    pool = wh.readers
    pool._pid = -1  # as a forked child sees it: the inherited connections are left alone
    inherited = dict(pool._readers)
    assert wh.count("prompts") == 1
    assert all(pool._readers[k] is not v for k, v in inherited.items() if k in pool._readers)
    assert readers_module._ABANDONED[-1] == inherited


def _journal_mode(catalog: Path) -> bytes:
    return catalog.read_bytes()[18:20]  # SQLite's file format bytes: 1 = rollback journal, 2 = WAL


def test_the_embedded_catalog_is_kept_in_wal_mode(wh, zhufu_home):
    wh.append(_prompts("春节"))
    catalog = zhufu_home / "lake" / "catalog.sqlite"
    assert _journal_mode(catalog) == b"\x02\x02"
    wh.close()
    # a catalog from before this mode (rollback journal) is converted when next opened
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('PRAGMA journal_mode=DELETE'); c.close()", str(catalog)], check=True)
    assert _journal_mode(catalog) == b"\x01\x01"
    connection._WAL_CATALOGS.clear()  # this process saw WAL mode; another one opens it next
    _in_another_process(zhufu_home, "wh.append([PromptRow(text='元宵', source='t', source_ref='r', batch='b')])")
    assert _journal_mode(catalog) == b"\x02\x02"
    assert sorted(wh.sql("SELECT text FROM prompts")["text"]) == ["元宵", "春节"]


def test_an_open_read_transaction_does_not_hold_up_a_commit(wh):
    """In SQLite's rollback-journal mode this commit waited 235 s and failed ('database is locked'): a
    reader's transaction holds a shared lock on the catalog, a commit needs an exclusive one."""
    wh.append(_prompts("春节"))
    reader = wh.connect()
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM prompts").fetchall() == [(1,)]
        wh.append(_prompts("元宵"))
        assert reader.execute("SELECT count(*) FROM prompts").fetchall() == [(1,)]  # its own snapshot
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert wh.count("prompts") == 2
