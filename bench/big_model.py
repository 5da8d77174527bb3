"""Engines at a bigger model: a SmolLM2-1.7B-shaped model with random weights, and model FLOPs utilisation.

The engines are measured at 135M elsewhere, where a step is bound by host overhead. This builds a model of
SmolLM2-1.7B's architecture with *random* weights (no 1.7B weights can be downloaded here): a throughput
measurement only — its accuracies mean nothing. Then, in one call on one GPU, beside the plain-TRL anchors
(``$RM``: a trained 135M reward model, e.g. ``bench.grpo_gain``'s ``rm`` stage; its tokenizer has a pad token):

    python -m bench.big_model build --like $MODEL --out /tmp/smollm2_hf          # the anchors read this path
    LIMIT=2048 python ../shared/anchors/rm_baseline.py $SMOL_DIR $GGUF $SEED_DATA > anchor_rm.log
    python -m bench.rm_throughput --model /tmp/smollm2_hf --data $SEED_DATA --epochs 0.5 \
        --variants fast:96:3e-5:fusednorm --out ours_rm.json         # fast:64 fits an 80 GB H100
    STEPS=5 python ../shared/anchors/grpo_baseline.py /tmp/smollm2_hf $RM $SEED_DATA > anchor_grpo.log
    python -m bench.grpo_throughput --policy /tmp/smollm2_hf --reward-model $RM --data $SEED_DATA --steps 5 \
        --generation graph --out ours_grpo.json
    python -m bench.big_model report --model /tmp/smollm2_hf --data $SEED_DATA --limit 2048 \
        --rm ours_rm.json --anchor-rm anchor_rm.log --grpo ours_grpo.json --anchor-grpo anchor_grpo.log

MFU = training FLOPs actually needed for the real (non-pad) tokens each engine ran / time / the GPU's dense
bf16 peak. FLOPs per token = 6 × the non-embedding parameters (a reward model never runs the LM head);
attention's 12·layers·width·context adds < 1% at these lengths (≤ 256 tokens) and is left out. The anchor
runs chosen and rejected as separate padded rows; zhufu's packed rows share the prompt prefix, so it needs
fewer tokens per pair — both counted as what each engine actually computed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from tabulate import tabulate

# SmolLM2-1.7B's published architecture (HuggingFaceTB/SmolLM2-1.7B-Instruct, config.json); "tiny" is for tests
SHAPES: dict[str, dict] = {
    "smollm2-1.7b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                     "num_attention_heads": 32, "num_key_value_heads": 32, "rope_theta": 130000.0,
                     "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 4, "tie_word_embeddings": True},
}

# dense bf16 tensor-core peak, FLOP/s (vendor data sheets, without sparsity)
PEAK_BF16 = {"H100 80GB HBM3": 989.4e12, "H100 SXM": 989.4e12, "H200": 989.4e12, "H100 PCIe": 756.5e12,
             "H100 NVL": 835.5e12, "A100": 312e12}


def build(like: str, out: str, shape: str = "smollm2-1.7b", seed: int = 0) -> dict:
    """A random-weight causal LM of ``shape`` with ``like``'s tokenizer and vocabulary, saved as bf16."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = AutoConfig.from_pretrained(like)
    for k, v in {**SHAPES[shape], "head_dim": SHAPES[shape]["hidden_size"] // SHAPES[shape]["num_attention_heads"]}.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(like).save_pretrained(out)
    return {"out": out, "shape": shape, "params": param_count(model), "non_embedding_params": non_embedding(model)}


def param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def non_embedding(model) -> int:
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def flops_per_token(model_dir: str) -> float:
    """6 × non-embedding parameters (forward + backward), counted on a meta-device copy of the model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return 6.0 * non_embedding(model)


def anchor_tokens_per_pair(model_dir: str, data: str, limit: int, max_length: int = 256) -> float:
    """Real tokens per pair as the anchor runs them: chosen and rejected, each its own chat-templated row."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = json.loads(Path(data, "reward_pairs_train.json").read_text(encoding="utf-8"))
    rows = rows[:limit] if limit else rows
    total = 0
    for r in rows:
        prompt = r["conversations"][0]["value"]
        for side in ("chosen", "rejected"):
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": r[side]["value"]}]
            total += min(len(tok(tok.apply_chat_template(msgs, tokenize=False))["input_ids"]), max_length)
    return total / len(rows)


def peak_flops(device: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in device), None)


def last_json(log: str) -> dict:
    """The last top-level JSON object a script printed (the anchors print one after their training logs)."""
    text = Path(log).read_text(encoding="utf-8", errors="replace")
    starts = [m.start() for m in re.finditer(r"(?m)^\{", text)]
    for s in reversed(starts):
        try:
            return json.JSONDecoder().raw_decode(text[s:])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError(f"{log}: no JSON object found")


def report(a: argparse.Namespace) -> list[dict]:
    fpt = flops_per_token(a.model)
    rows: list[dict] = []
    anchor_rm = last_json(a.anchor_rm) if a.anchor_rm else None
    device = (anchor_rm or {}).get("device", "")
    if anchor_rm:
        tpp = anchor_tokens_per_pair(a.model, a.data, a.limit)
        rows.append(_rm_row("anchor RewardTrainer (bf16 weights, bs 32)", anchor_rm["pairs_per_s"], tpp, fpt,
                            device, anchor_rm.get("peak_mem_gb"), None))
    for r in json.loads(Path(a.rm).read_text()) if a.rm else []:
        device = device or r.get("device", "")
        rows.append(_rm_row(f"zhufu {r['variant']}", r["pairs_per_s"], r["tokens_per_pair"], fpt, device,
                            r.get("peak_mem_gb"), anchor_rm["pairs_per_s"] if anchor_rm else None))
    print(f"model: {a.model} · {fpt / 6 / 1e9:.3f} B non-embedding parameters · {fpt / 1e9:.2f} GFLOP per "
          f"training token · device: {device or '?'} · bf16 peak {peak_flops(device) or '?'}")
    print(tabulate(rows, headers="keys", tablefmt="github"))
    grpo_rows: list[dict] = []
    anchor_grpo = last_json(a.anchor_grpo) if a.anchor_grpo else None
    if anchor_grpo:
        grpo_rows.append({"run": "anchor GRPOTrainer", "completions/s": anchor_grpo["completions_per_s"],
                          "s/step": anchor_grpo["s_per_step"], "× anchor": 1.0,
                          "peak GB": anchor_grpo.get("peak_mem_gb")})
    for r in json.loads(Path(a.grpo).read_text()) if a.grpo else []:
        grpo_rows.append({"run": f"zhufu training.grpo ({r['generation']})", "completions/s": r["completions_per_s"],
                          "s/step": r["s_per_step"],
                          "× anchor": round(r["completions_per_s"] / anchor_grpo["completions_per_s"], 2)
                          if anchor_grpo else None, "peak GB": r.get("peak_mem_gb")})
    if grpo_rows:
        print(tabulate(grpo_rows, headers="keys", tablefmt="github"))
    if a.out:
        Path(a.out).write_text(json.dumps({"flops_per_token": fpt, "device": device, "rm": rows, "grpo": grpo_rows},
                                          indent=1), encoding="utf-8")
    return rows + grpo_rows


def _rm_row(name: str, pairs_per_s: float, tokens_per_pair: float, fpt: float, device: str,
            peak_gb: float | None, anchor_pairs_per_s: float | None) -> dict:
    peak = peak_flops(device)
    achieved = pairs_per_s * tokens_per_pair * fpt
    return {"run": name, "pairs/s": pairs_per_s,
            "× anchor": round(pairs_per_s / anchor_pairs_per_s, 2) if anchor_pairs_per_s else 1.0,
            "tokens/pair": round(tokens_per_pair, 1), "TFLOP/s": round(achieved / 1e12, 1),
            "MFU": round(achieved / peak, 3) if peak else None, "peak GB": peak_gb}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.big_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="save a random-weight model of a bigger architecture")
    b.add_argument("--like", required=True, help="HF checkpoint whose tokenizer and model type to use")
    b.add_argument("--out", required=True)
    b.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-1.7b")
    r = sub.add_parser("report", help="pairs/s, × anchor and MFU from the runs' outputs")
    r.add_argument("--model", required=True, help="the built model (for FLOPs and the anchor's token count)")
    r.add_argument("--data", required=True, help="the paper's files (reward_pairs_train.json)")
    r.add_argument("--limit", type=int, default=0, help="the anchor's LIMIT (0: every pair)")
    r.add_argument("--rm", help="bench.rm_throughput --out JSON")
    r.add_argument("--anchor-rm", help="rm_baseline.py's log")
    r.add_argument("--grpo", help="bench.grpo_throughput --out JSON")
    r.add_argument("--anchor-grpo", help="grpo_baseline.py's log")
    r.add_argument("--out")
    a = p.parse_args(argv)
    if a.cmd == "build":
        print(json.dumps(build(a.like, a.out, a.shape)))
    else:
        report(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
