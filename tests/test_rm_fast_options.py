"""The fast reward-model engine honours the options that change the model id: LoRA trains adapters
(merged into the artifact; the embeddings stay untouched) and gradient checkpointing is on during
training, also with packed rows, whose attention re-runs in the backward pass; micro-batches accumulate
the update of the whole batch."""

import pytest
import torch

from training import artifacts
from training.config import LoRA, RMRunConfig
from training.data import write_jsonl
from training.reporting import Reporter

PAIRS = [{"prompt": f"给朋友写一句生日祝福{i}", "chosen": "愿你岁岁平安，笑口常开，所求皆如愿。", "rejected": "生日快乐"}
         for i in range(6)]


def _cfg(tmp_path, tiny_model_dir, name, **kw) -> RMRunConfig:
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    return RMRunConfig(base_model=str(tiny_model_dir), output_dir=str(tmp_path / name), engine="fast",
                       train_files=[str(tmp_path / "pairs.jsonl")], max_steps=2, batch_size=2, learning_rate=1e-3,
                       **kw)


@pytest.mark.parametrize("packing", [True, False])
def test_fast_engine_trains_lora_adapters_and_merges_them(tmp_path, tiny_model_dir, packing):
    from transformers import AutoModelForSequenceClassification

    from training import rm

    cfg = _cfg(tmp_path, tiny_model_dir, "rm", packing=packing, lora=LoRA(r=4, alpha=8, dropout=0.0))
    with Reporter() as r:
        assert rm.train(cfg, r)["steps"] == 2
    assert artifacts.is_complete(cfg.output_dir)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    out = AutoModelForSequenceClassification.from_pretrained(cfg.output_dir, num_labels=1)
    assert not any("lora" in k for k in out.state_dict())  # merged: a plain model
    emb = lambda m: m.base_model.embed_tokens.weight  # noqa: E731
    assert torch.equal(emb(out), emb(base))  # not an adapter target: untouched (full training moves it)
    q = lambda m: m.base_model.layers[0].self_attn.q_proj.weight  # noqa: E731
    assert not torch.equal(q(out), q(base))  # the merged adapter moved it


@pytest.mark.parametrize("packing", [True, False])
def test_fast_engine_turns_gradient_checkpointing_on(tmp_path, tiny_model_dir, packing):
    from training import rm

    cfg = _cfg(tmp_path, tiny_model_dir, "rm", packing=packing, gradient_checkpointing=True)
    model, tok = rm._model_and_tokenizer(cfg.base_model)
    seen = []
    layer = model.base_model.layers[0]  # inside the checkpointed forward: runs again when recomputed
    layer.self_attn.register_forward_pre_hook(lambda mod, args: seen.append(layer.gradient_checkpointing))
    with Reporter() as r:
        res = rm.train_fast(cfg, rm.load_pairs(cfg), model, tok, r)
    assert res["steps"] == 2 and res["train_loss"] is not None
    assert seen and all(seen)  # every training forward ran checkpointed
    assert len(seen) == 4  # two per step: the backward re-ran each checkpointed forward


@pytest.mark.parametrize("packing", [True, False])
def test_micro_batches_accumulate_the_same_update_as_the_whole_batch(tmp_path, tiny_model_dir, packing):
    from safetensors.torch import load_file

    from training import rm

    trained = {}
    for micro in (0, 1):  # one forward of the batch of 2 against two forwards of 1, gradients accumulated
        cfg = _cfg(tmp_path, tiny_model_dir, f"rm{micro}", packing=packing, micro_batch_size=micro)
        with Reporter() as r:
            m = rm.train(cfg, r)
        assert m["steps"] == 2
        trained[micro] = load_file(str(next(p for p in (tmp_path / f"rm{micro}").glob("*.safetensors"))))
    base = load_file(str(next(p for p in tiny_model_dir.glob("*.safetensors"))))
    moved = max((trained[0][k].float() - base[k].float()).abs().max().item() for k in base.keys() & trained[0].keys())
    assert moved > 1e-3
    assert max((trained[0][k] - trained[1][k]).abs().max().item() for k in trained[0]) < 1e-5
