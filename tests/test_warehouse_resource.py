"""WarehouseResource.get(): one Warehouse per location and process, migrated once; readers (sensor
ticks, the CLI) take no write lock and do not queue behind a writer."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import resources.warehouse as resource_module
import warehouse.store as store
from resources import WarehouseResource
from warehouse import Warehouse
from warehouse.cli import main
from warehouse.config import WarehouseConfig
from warehouse.connection import write_lock
from warehouse.schema import PromptRow


@pytest.fixture
def calls(monkeypatch) -> Counter[str]:
    """Counts write-lock acquisitions and migrate() calls."""
    counted: Counter[str] = Counter()

    @contextmanager
    def counting_lock(config: WarehouseConfig) -> Iterator[None]:
        counted["write_lock"] += 1
        with write_lock(config):
            yield

    real_migrate = Warehouse.migrate

    def counting_migrate(self: Warehouse) -> list[int]:
        counted["migrate"] += 1
        return real_migrate(self)

    monkeypatch.setattr(store, "write_lock", counting_lock)
    monkeypatch.setattr(Warehouse, "migrate", counting_migrate)
    return counted


def _count(wh: Warehouse) -> int:
    return int(wh.sql("SELECT count(*) AS n FROM prompts")["n"][0])


def test_a_second_get_runs_no_migration_and_takes_no_write_lock(zhufu_home, calls):
    first = WarehouseResource(home=str(zhufu_home)).get()
    assert _count(first) == 0
    assert calls == {"migrate": 1, "write_lock": 1}  # a fresh lake: migrated once, under the lock

    calls.clear()
    second = WarehouseResource(home=str(zhufu_home)).get()  # a new resource instance, as per sensor tick
    assert second is first and _count(second) == 0 and _count(first) == 0
    assert calls == {}

    second.append([PromptRow(text="春节祝福", source="t", source_ref="a", batch="b")])  # writers still lock
    assert calls == {"write_lock": 1}


def test_a_new_process_on_a_migrated_lake_takes_no_write_lock(zhufu_home, calls, monkeypatch, capsys):
    WarehouseResource(home=str(zhufu_home)).get()
    monkeypatch.setattr(resource_module, "_WAREHOUSES", {})  # as if a fresh process
    calls.clear()
    assert _count(WarehouseResource(home=str(zhufu_home)).get()) == 0
    assert main(["sql", "SELECT count(*) AS n FROM prompts"]) == 0  # the CLI builds its own Warehouse
    assert "0" in capsys.readouterr().out
    assert calls["write_lock"] == 0


def test_readers_do_not_queue_behind_a_writer(zhufu_home):
    resource = WarehouseResource(home=str(zhufu_home))
    resource.get()
    answers: list[int] = []
    with write_lock(WarehouseConfig.embedded(zhufu_home)):  # a long write in progress
        reader = threading.Thread(target=lambda: answers.append(_count(resource.get())), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert answers == [0], "the reader waited for the write lock"
