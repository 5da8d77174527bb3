"""inbox_sensor: a partition and a run per new inbox file; the cursor remembers what it saw."""

import json
import os

import dagster as dg

from assets.partitions import prompt_batches
from resources import DatasetsResource
from sensors.inbox import inbox_sensor


def _tick(instance, inbox, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={"datasets": DatasetsResource(inbox_dir=str(inbox))})
    result = inbox_sensor(ctx)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def test_new_files_become_partitions_and_runs_once(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "monday.txt").write_text("周一祝福\n", encoding="utf-8")
    (inbox / "notes.md").write_text("ignored", encoding="utf-8")

    first = _tick(instance, inbox)
    assert sorted(r.partition_key for r in first.run_requests) == ["builtin", "inbox-monday.txt"]
    assert set(instance.get_dynamic_partitions(prompt_batches.name)) == {"builtin", "inbox-monday.txt"}
    assert set(json.loads(first.cursor)) == {"inbox-monday.txt"}

    idle = _tick(instance, inbox, first.cursor)
    assert idle.run_requests == [] and idle.dynamic_partitions_requests == []

    (inbox / "tuesday.jsonl").write_text(json.dumps({"query": "周二祝福"}, ensure_ascii=False), encoding="utf-8")
    second = _tick(instance, inbox, idle.cursor)
    assert [r.partition_key for r in second.run_requests] == ["inbox-tuesday.jsonl"]

    # a changed file is ingested again (same partition, new run key)
    path = inbox / "monday.txt"
    path.write_text("周一祝福\n周一快乐\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    third = _tick(instance, inbox, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["inbox-monday.txt"]
    assert third.run_requests[0].run_key != first.run_requests[1].run_key
    assert third.dynamic_partitions_requests == []


def test_paper_batches_are_registered_when_configured(zhufu_home, tmp_path, paper_data):
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources={
        "datasets": DatasetsResource(inbox_dir=str(tmp_path), seed_data_dir=str(paper_data))})
    keys = {r.partition_key for r in inbox_sensor(ctx).run_requests}
    assert keys == {"builtin", "igniting-queries", "igniting-grpo-train", "igniting-grpo-test"}
