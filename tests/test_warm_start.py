"""Warm starts: the shipped GPU-trained adapters, how they are built, merged and chosen."""

from __future__ import annotations

import json
import random

import pytest

from agents.judging import DEGRADATIONS, degrade, degraded_rows
from resources.model_store import EMBEDDED_MODEL, ModelStoreError, warm_starts

GOOD = "生日快乐，亲爱的女孩！愿你的新一岁如星辰般闪耀，每一天都被甜蜜和惊喜填满。保持那份温柔，你值得所有美好如期而至！"


def test_degrade_spoils_a_greeting_in_each_of_its_ways_and_never_returns_it_unchanged():
    rng = random.Random(0)
    seen = {}
    for _ in range(60):
        kind, text = degrade(GOOD, rng)
        assert text != GOOD and text.strip()
        seen[kind] = text
    assert set(seen) == set(DEGRADATIONS)
    assert sorted(seen["shuffle"]) == sorted(GOOD)  # the same characters, in no order
    assert len(seen["cut"]) < len(GOOD) and GOOD.startswith(seen["cut"])
    assert len(seen["repeat"]) > len(GOOD)
    assert degrade("生日快乐", rng) is None  # too short to spoil visibly


def test_degraded_rows_are_negatives_with_their_kind_as_source():
    goods = [{"prompt": f"请求{i}", "response": GOOD} for i in range(40)]
    rows = degraded_rows(goods, [["语言自然流畅。"]], random.Random(1), share=0.5)
    assert 5 < len(rows) < 35
    assert {r["label"] for r in rows} == {0}
    assert {r["source"].split(":")[0] for r in rows} == {"degraded"}
    assert all(r["response"] != GOOD for r in rows)


def test_the_shipped_warm_starts_say_how_they_were_trained_and_what_they_measured():
    shipped = warm_starts()
    assert set(shipped) == {"judge", "sft"}
    judge = shipped["judge"]
    assert judge["trainer"] == "training.judge" and judge["config"]["lora"]["r"] == 16
    assert set(judge["data_sha256"]) >= {"reward_pairs_train.json", "evaluation_dev.jsonl"}
    assert judge["metrics"]["eval"]["auc"] > judge["metrics"]["before"]["eval"]["auc"]  # it learned
    assert shipped["sft"]["trainer"] == "training.sft" and shipped["sft"]["metrics"]["examples"] > 0


def test_a_warm_start_merges_into_the_embedded_model_once(model_store, embedded_model_dir):
    from safetensors.torch import load_file

    merged = model_store.ensure_warm_start("judge")
    assert merged.name == f"{EMBEDDED_MODEL}+judge"
    assert json.loads((merged / "zhufu_model.json").read_text())["warm_start"] == "judge"
    assert model_store.resolve(f"{EMBEDDED_MODEL}+judge") == str(merged)
    base, new = load_file(embedded_model_dir / "model.safetensors"), load_file(merged / "model.safetensors")
    assert set(base) == set(new)  # a plain checkpoint: no adapter tensors left
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not (base[q] == new[q]).all()
    mtime = (merged / "model.safetensors").stat().st_mtime
    assert model_store.ensure_warm_start("judge") == merged and (merged / "model.safetensors").stat().st_mtime == mtime
    with pytest.raises(ModelStoreError, match="no warm start 'poem'"):
        model_store.ensure_warm_start("poem")


def test_a_stale_merge_is_rebuilt_when_the_shipped_adapter_changes(model_store, embedded_model_dir):
    merged = model_store.ensure_warm_start("judge")
    info = merged / "zhufu_model.json"
    meta = json.loads(info.read_text())
    assert len(meta["adapter_sha256"]) == 64
    info.write_text(json.dumps({**meta, "adapter_sha256": "an older release"}))  # as a store from before the change
    mtime = (merged / "model.safetensors").stat().st_mtime
    assert model_store.ensure_warm_start("judge") == merged
    assert json.loads(info.read_text())["adapter_sha256"] == meta["adapter_sha256"]
    assert (merged / "model.safetensors").stat().st_mtime != mtime


def test_training_starts_from_a_warm_start_only_for_the_embedded_base_and_records_it():
    from resources.training import TrainingResource

    base, lineage = TrainingResource().start_from("judge", None, True)
    assert base == f"{EMBEDDED_MODEL}+judge" and lineage["warm_start"] == "judge" and lineage["warm_start_commit"]
    assert TrainingResource().start_from("judge", None, False) == (EMBEDDED_MODEL, {})
    assert TrainingResource(base_model="/models/qwen").start_from("sft", None, True) == ("/models/qwen", {})
    assert TrainingResource().start_from("reward", None, True) == (EMBEDDED_MODEL, {})  # none ships


def test_the_policy_is_trained_and_asked_with_one_chat_format():
    from agents.policy import messages
    from training.data import prompt_records, sft_records, user

    assert user("给妈妈的生日祝福") == messages("给妈妈的生日祝福")
    assert sft_records([{"prompt": "p", "response": "r"}])[0]["prompt"] == messages("p")
    assert prompt_records([{"prompt": "p"}])[0]["prompt"] == messages("p")


def test_the_warm_start_builder_trains_both_adapters_and_writes_what_ships(tmp_path, tiny_model_dir, paper_data):
    from training import warm_start

    data = tmp_path / "data"
    data.mkdir()
    for name, n in (("reward_pairs_train.json", 12), ("reward_pairs_dev.json", 8), ("sft.json", 12)):
        (data / name).write_text(json.dumps(json.loads((paper_data / name).read_text())[:n], ensure_ascii=False))
    for name, n in (("evaluation_dev.jsonl", 12), ("queries.txt", 40)):
        (data / name).write_text("".join((paper_data / name).read_text().splitlines(keepends=True)[:n]))
    out = tmp_path / "out"
    assert warm_start.main(["build", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out),
                            "--work", str(tmp_path / "work"), "--commit", "abc123", "--check-prompts", "2",
                            "--judge-epochs", "1", "--sft-epochs", "1"]) == 0
    for kind in ("judge", "sft"):
        files = {p.name for p in (out / kind).iterdir()}
        assert files == {"adapter_model.safetensors", "adapter_config.json", "zhufu_warm_start.json"}
        manifest = json.loads((out / kind / "zhufu_warm_start.json").read_text())
        assert manifest["commit"] == "abc123" and manifest["kind"] == kind
        assert "output_dir" not in manifest["config"]  # nothing of the build machine's paths
        assert json.loads((out / kind / "adapter_config.json").read_text())["base_model_name_or_path"] == EMBEDDED_MODEL
    judge = json.loads((out / "judge" / "zhufu_warm_start.json").read_text())
    assert judge["check"]["prompts"] == 2 and {"base", "sft"} <= set(judge["check"])
    assert not (tmp_path / "work").exists()  # scratch removed
