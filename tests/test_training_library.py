"""The training library on a tiny real model: SFT, both reward-model engines and GRPO leave a
complete artifact with a manifest; bad input names its file and line; a failed run leaves none."""

import json

import pytest

from training import artifacts
from training.config import GRPORunConfig, RMRunConfig, SFTRunConfig
from training.data import DataError, read_jsonl, write_jsonl
from training.reporting import Reporter

PAIRS = [{"prompt": f"给朋友写一句生日祝福{i}", "chosen": "愿你岁岁平安，笑口常开，所求皆如愿。", "rejected": "生日快乐"}
         for i in range(6)]
LABELS = [{"prompt": "新年祝福", "response": "新年快乐" * (1 + i % 3), "label": i % 2} for i in range(8)]


@pytest.fixture
def data(tmp_path):
    write_jsonl(tmp_path / "sft.jsonl", [{"prompt": p["prompt"], "response": p["chosen"]} for p in PAIRS])
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    write_jsonl(tmp_path / "labels.jsonl", LABELS)
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p["prompt"]} for p in PAIRS])
    return tmp_path


def test_sft_then_reward_models_then_grpo_write_complete_artifacts(data, tiny_model_dir):
    small = {"max_steps": 2, "batch_size": 2, "max_length": 256, "logging_steps": 1}
    sft = SFTRunConfig(base_model=str(tiny_model_dir), output_dir=str(data / "sft"),
                       train_file=str(data / "sft.jsonl"), **small)
    with Reporter() as r:
        m = __import__("training.sft", fromlist=["train"]).train(sft, r)
    assert m["steps"] == 2 and artifacts.is_complete(data / "sft")
    assert (data / "sft" / "config.json").is_file() and not (data / "sft.partial").exists()

    from training import rm

    for engine, packing in (("trl", None), ("fast", True), ("fast", False)):
        name = f"rm-{engine}" + ("-bucketed" if packing is False else "")
        cfg = RMRunConfig(base_model=str(tiny_model_dir), output_dir=str(data / name), engine=engine, packing=packing,
                          train_files=[str(data / "pairs.jsonl")], eval_pairs_file=str(data / "pairs.jsonl"),
                          eval_labels_file=str(data / "labels.jsonl"), **small)
        with Reporter() as r:
            m = rm.train(cfg, r)
        assert m["steps"] == 2 and m["pairs_per_s"] > 0 and m["packing"] is bool(packing)
        ev = m["eval_pairs"]
        assert ev["pairs"] == 6 and ev["length_pair_acc"] == 1.0 and 0 <= ev["pair_acc"] <= 1
        lab = m["eval_labels"]
        assert lab["labelled"] == 8 and lab["length_auc"] is not None and lab["threshold"] is not None
        manifest = artifacts.read_manifest(data / name)
        assert manifest["kind"] == "reward" and any("loss" in h for h in manifest["log_history"])

    from training import grpo

    cfg = GRPORunConfig(base_model=str(data / "sft"), output_dir=str(data / "grpo"),
                        prompts_file=str(data / "prompts.jsonl"), eval_prompts_file=str(data / "prompts.jsonl"),
                        max_eval_prompts=2, reward_model=str(data / "rm-fast"), max_steps=2, batch_size=4,
                        num_generations=2, max_completion_length=8, logging_steps=1, generation="graph",
                        greedy_rollouts=1)
    with Reporter() as r:
        m = grpo.train(cfg, r)
    assert m["steps"] == 2 and m["generation"] == "graph" and m["graph_rollouts"] == 2 and m["reward_first"] is not None
    assert m["greedy_rollouts"] == 1
    assert m["before"]["reward_mean"] is not None and artifacts.is_complete(data / "grpo")


def test_a_failed_run_leaves_no_artifact(data, tiny_model_dir):
    from training import grpo

    cfg = GRPORunConfig(base_model=str(tiny_model_dir), output_dir=str(data / "grpo"),
                        prompts_file=str(data / "prompts.jsonl"), reward="reward_model", reward_model=None)
    with pytest.raises(ValueError, match="reward_model"), Reporter() as r:
        grpo.train(cfg, r)
    assert not artifacts.is_complete(data / "grpo")


def test_greedy_rollouts_need_the_graph_sampler_and_a_sampled_completion_per_group(data, tiny_model_dir):
    from training import grpo

    base = dict(base_model=str(tiny_model_dir), output_dir=str(data / "grpo"), prompts_file=str(data / "prompts.jsonl"),
                reward="reward_model", reward_model=None, num_generations=2)
    with pytest.raises(ValueError, match="needs the graph sampler"), Reporter() as r:
        grpo.train(GRPORunConfig(**base, generation="generate", greedy_rollouts=1), r)
    with pytest.raises(ValueError, match="no sampled completion in groups of 2"), Reporter() as r:
        grpo.train(GRPORunConfig(**base, generation="graph", greedy_rollouts=2), r)
    assert not artifacts.is_complete(data / "grpo")


def test_bad_training_input_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: missing rejected"):
        read_jsonl(path, ("prompt", "chosen", "rejected"))
    path.write_bytes(b'{"prompt": "a"}\n{broken\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: broken JSON"):
        read_jsonl(path, ("prompt",))
    path.write_bytes(b'{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:1: invalid UTF-8"):
        read_jsonl(path, ("prompt",))
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"base_model": "x", "output_dir": "y", "train_file": "z", "typo": 1}))
    with pytest.raises(ValueError, match="typo"):
        SFTRunConfig.load(cfg)


def test_a_reader_never_sees_a_half_written_jsonl(tmp_path):
    from training.data import write_jsonl

    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"prompt": "旧"}])
    seen = []

    def rows():  # read the file while the new version is being written
        yield {"prompt": "新1"}
        seen.append(read_jsonl(path, ("prompt",)))
        yield {"prompt": "新2"}

    assert write_jsonl(path, rows()) == 2
    assert seen == [[{"prompt": "旧"}]]  # the old file, whole
    assert read_jsonl(path, ("prompt",)) == [{"prompt": "新1"}, {"prompt": "新2"}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]  # no temporary file left
    with pytest.raises(TypeError):  # a failed write leaves the old file and no temporary one
        write_jsonl(path, [{"prompt": object()}])
    assert read_jsonl(path, ("prompt",)) == [{"prompt": "新1"}, {"prompt": "新2"}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_right_padding_needs_no_attention_mask_for_the_last_token_reward(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.scoring import last_token_rewards

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = last_token_rewards(model, ids, mask)
        b = last_token_rewards(model, ids, mask, mask_attention=False)
    assert torch.allclose(a, b, atol=1e-5)


def test_bf16_weights_with_fp32_master_copies_keep_small_updates(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.precision import MasterWeights

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    before = model.score.weight.detach().clone()
    mw = MasterWeights(model, lr=1e-6, fused=False)
    assert model.score.weight.dtype == torch.bfloat16
    for _ in range(3):
        model(input_ids=torch.tensor([[5, 6, 7]])).logits.float().sum().backward()
        mw.step()
    model = mw.load_into(model)
    delta = (model.score.weight - before).abs().max().item()
    assert model.score.weight.dtype == torch.float32 and 0 < delta < 1e-4  # 1e-6 steps survive in fp32


def test_packed_prefix_shared_rewards_equal_the_padded_forward_and_train(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.packing import common_prefix, pack_pairs, packed_rewards, use_packed_attention
    from training.scoring import last_token_rewards

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    prompt = [[1, 5, 6, 7], [1, 9, 9], [1, 4]]
    chosen = [p + r for p, r in zip(prompt, [[10, 11, 12], [13, 14, 15, 16, 17], [18]], strict=True)]
    rejected = [p + r for p, r in zip(prompt, [[20], [21, 22], [23, 24, 25, 26]], strict=True)]
    rejected.append(chosen[0][:3])  # a prefix of the chosen sequence: one token is still scored apart
    chosen.append(list(chosen[0]))
    assert common_prefix(chosen[3], rejected[3]) == 2
    seqs = chosen + rejected
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        padded = last_token_rewards(model, ids, mask)
    batch = pack_pairs(chosen, rejected)
    assert batch.n_tokens < int(mask.sum())  # prompts are computed once per pair
    use_packed_attention(model)
    with torch.no_grad():
        c, r = packed_rewards(model, batch)
    assert torch.allclose(torch.cat([c, r]), padded, atol=1e-4)
    model.train()
    c, r = packed_rewards(model, batch)
    (-torch.nn.functional.logsigmoid(c - r).mean()).backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_graph_sampler_greedy_matches_generate_and_stops_at_eos(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from training.graph_sampler import GraphSampler, Sampling

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 4, 4]]
    sampler = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=0))
    ours = sampler.generate(prompts, 12)
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=2,
                         pad_token_id=0)[:, width:].tolist()
    for a, b in zip(ours, ref, strict=True):
        assert a == b[: len(a)] and (len(a) == 12 or a[-1] == 2)
    sampled = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(top_k=5, top_p=0.9))
    assert all(1 <= len(c) <= 12 for c in sampled.generate(prompts, 12))


def test_graph_sampler_decodes_rows_marked_greedy_by_argmax_and_samples_the_rest(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from training.graph_sampler import GraphSampler, Sampling

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = [[1, 5, 6], [1, 5, 6], [1, 9], [1, 9]]
    argmax = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=0)).generate(prompts, 12)
    hot = GraphSampler(model, eos_token_ids=[2], pad_token_id=0, sampling=Sampling(temperature=5.0))
    runs = [hot.generate(prompts, 12, greedy=[True, False, True, False]) for _ in range(3)]
    assert all(r[0] == argmax[0] and r[2] == argmax[2] for r in runs)
    assert any(r[1] != argmax[1] or r[3] != argmax[3] for r in runs)  # at T 5 a sampled row leaves the argmax path
    with pytest.raises(ValueError, match="2 greedy flags for 4 prompts"):
        hot.generate(prompts, 12, greedy=[True, False])


def test_fused_rms_norm_matches_transformers_norm(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.kernels import apply

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        assert apply(model, "fused_norm") == "fused_norm (5 norms)" or "(0 norms)" not in apply(model, "fused_norm")
        after = model(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-5)


def test_judge_with_weight_average_saves_the_average_not_the_last_step(data, tiny_model_dir):
    """ema_decay: the saved judge is the moving average of the weights — here 0.5 over 3 steps, so
    its weights lie strictly between the base's and the last step's — and training runs with
    gradient checkpointing on (the bench's several-runs-per-GPU mode)."""
    import torch
    from safetensors.torch import load_file

    from training import judge
    from training.config import JudgeRunConfig

    rows = [{"prompt": x["prompt"], "response": x["response"], "label": x["label"], "principles": ["真诚"]}
            for x in LABELS]
    write_jsonl(data / "judge.jsonl", rows)
    runs = {}
    for name, ema in (("last", 0.0), ("ema", 0.5)):
        cfg = JudgeRunConfig(base_model=str(tiny_model_dir), output_dir=str(data / name), train_file=str(data / "judge.jsonl"),
                             eval_labels_file=str(data / "labels.jsonl"), max_steps=3, batch_size=4,
                             learning_rate=1e-2, ema_decay=ema, gradient_checkpointing=True, principle_ablations=False,
                             rule_eval=False)
        with Reporter() as r:
            judge.train(cfg, r)
        assert artifacts.is_complete(data / name)
        runs[name] = load_file(data / name / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    key = next(k for k in base if k.endswith("mlp.down_proj.weight"))
    d_last = (runs["last"][key] - base[key]).norm()
    d_ema = (runs["ema"][key] - base[key]).norm()
    assert 0 < d_ema < d_last and not torch.equal(runs["ema"][key], runs["last"][key])
