"""inbox_sensor: a partition and a run per new inbox file; the cursor remembers what it saw."""

import json
import os

import dagster as dg

from assets.ingest import prompts
from assets.partitions import prompt_batches
from resources import DatasetsResource, WarehouseResource
from sensors.inbox import inbox_sensor
from warehouse import Warehouse, WarehouseConfig


def _tick(instance, inbox, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={"datasets": DatasetsResource(inbox_dir=str(inbox))})
    result = inbox_sensor(ctx)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def _ingested(result):
    return set(json.loads(result.cursor)["ingested"])


def test_new_files_become_partitions_and_runs_once(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "monday.txt").write_text("周一祝福\n", encoding="utf-8")
    (inbox / "notes.md").write_text("ignored", encoding="utf-8")

    seen = _tick(instance, inbox)  # a new file waits one tick: it may still be being written
    assert [r.partition_key for r in seen.run_requests] == ["builtin"]
    first = _tick(instance, inbox, seen.cursor)
    assert [r.partition_key for r in first.run_requests] == ["inbox-monday.txt"]
    assert set(instance.get_dynamic_partitions(prompt_batches.name)) == {"builtin", "inbox-monday.txt"}
    assert _ingested(first) == {"inbox-monday.txt"}

    idle = _tick(instance, inbox, first.cursor)
    assert idle.run_requests == [] and idle.dynamic_partitions_requests == []

    (inbox / "tuesday.jsonl").write_text(json.dumps({"query": "周二祝福"}, ensure_ascii=False), encoding="utf-8")
    second = _tick(instance, inbox, _tick(instance, inbox, idle.cursor).cursor)
    assert [r.partition_key for r in second.run_requests] == ["inbox-tuesday.jsonl"]

    # a changed file is ingested again (same partition, new run key)
    path = inbox / "monday.txt"
    path.write_text("周一祝福\n周一快乐\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert _tick(instance, inbox, second.cursor).run_requests == []
    third = _tick(instance, inbox, _tick(instance, inbox, second.cursor).cursor)
    assert [r.partition_key for r in third.run_requests] == ["inbox-monday.txt"]
    assert third.run_requests[0].run_key != first.run_requests[0].run_key
    assert third.dynamic_partitions_requests == []


def test_a_half_written_file_is_ingested_only_once_complete(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "big.jsonl"
    lines = [json.dumps({"query": f"第{i}句祝福"}, ensure_ascii=False) for i in range(3)]
    path.write_text(lines[0] + "\n" + lines[1][:7], encoding="utf-8")  # a copy in progress: a cut line
    t1 = _tick(instance, inbox)
    path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")  # still growing
    t2 = _tick(instance, inbox, t1.cursor)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t3 = _tick(instance, inbox, t2.cursor)
    assert [r.partition_key for r in t1.run_requests + t2.run_requests + t3.run_requests] == ["builtin"]
    done = _tick(instance, inbox, t3.cursor)  # unchanged since the last tick: complete
    assert [r.partition_key for r in done.run_requests] == ["inbox-big.jsonl"]
    size = path.stat().st_size
    assert done.run_requests[0].run_key.startswith(f"inbox-big.jsonl@{size}:")
    rows = DatasetsResource(inbox_dir=str(inbox)).prompt_batch("inbox-big.jsonl").rows
    assert [r.text for r in rows] == ["第0句祝福", "第1句祝福", "第2句祝福"]


def test_part_files_are_ignored_until_renamed(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    part = inbox / "friday.txt.part"
    part.write_text("周五祝福\n", encoding="utf-8")
    (inbox / ".friday.txt").write_text("an editor's hidden copy\n", encoding="utf-8")
    cursor = None
    for _ in range(3):
        result = _tick(instance, inbox, cursor)
        assert [r.partition_key for r in result.run_requests] in (["builtin"], [])
        cursor = result.cursor
    assert DatasetsResource(inbox_dir=str(inbox)).inbox_files() == {}
    part.rename(inbox / "friday.txt")
    result = _tick(instance, inbox, _tick(instance, inbox, cursor).cursor)
    assert [r.partition_key for r in result.run_requests] == ["inbox-friday.txt"]


def test_names_that_sanitise_alike_stay_separate_batches(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    texts = {"week 1.txt": "第一周祝福", "week_1.txt": "第一周快乐", "春节.txt": "春节祝福", "中秋.txt": "中秋祝福"}
    for name, text in texts.items():
        (inbox / name).write_text(text + "\n", encoding="utf-8")
    result = _tick(instance, inbox, _tick(instance, inbox).cursor)
    keys = [r.partition_key for r in result.run_requests]
    assert len(keys) == len(set(keys)) == 4
    assert "inbox-week_1.txt" in keys  # a name that needs no change keeps its key
    datasets = DatasetsResource(inbox_dir=str(inbox))
    for key in keys:  # each run materializes its own file's prompts
        dg.materialize([prompts], instance=instance, partition_key=key,
                       resources={"warehouse": WarehouseResource(), "datasets": datasets})
    stored = Warehouse(WarehouseConfig.embedded(zhufu_home)).sql("SELECT batch, text FROM prompts")
    assert sorted(stored["text"]) == sorted(texts.values())
    assert sorted(stored["batch"]) == sorted(keys)


def test_an_older_cursor_keeps_what_it_ingested(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "monday.txt"
    path.write_text("周一祝福\n", encoding="utf-8")
    st = path.stat()
    old_cursor = json.dumps({"inbox-monday.txt": f"{st.st_size}:{st.st_mtime_ns}"})
    result = _tick(instance, inbox, old_cursor)
    assert [r.partition_key for r in result.run_requests] == ["builtin"]
    assert _ingested(result) == {"inbox-monday.txt"}


def test_paper_batches_are_registered_when_configured(zhufu_home, tmp_path, paper_data):
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources={
        "datasets": DatasetsResource(inbox_dir=str(tmp_path), seed_data_dir=str(paper_data))})
    keys = {r.partition_key for r in inbox_sensor(ctx).run_requests}
    assert keys == {"builtin", "igniting-queries", "igniting-grpo-train", "igniting-grpo-test"}
