"""One GPU against several (torchrun, one rank per GPU) for the reward model's fast engine and GRPO (issue 14).

    python -m bench.multi_gpu --model $MODEL --work /root/keep/gain --gpus 2 --out multi_gpu.json

Needs ``bench.grpo_gain --stages prepare`` in ``--work`` first (pairs_a.jsonl, dev.jsonl, grpo.jsonl). Runs the
same config on 1 and on ``--gpus`` ranks, one after the other: the RM on half A of the training pairs (global
batch ``--rm-batch-size``, ``--rm-steps``), then GRPO from the base model with that RM as reward (global batch
``--grpo-batch-size`` completions, ``--grpo-steps``). Reports pairs/s and completions/s from each run's own training
clock, the speed-up, the RM's dev pair accuracy (the same global batch, so the same accuracy is expected) and its
model FLOPs utilisation per GPU (``bench.big_model``'s count: 6 × non-embedding parameters per real token).

At 135M a step is bound by fixed per-step costs that a second GPU does not share; the question a second GPU answers
is at a size where the step is compute-bound (``bench.big_model build`` makes a SmolLM2-1.7B-shaped model):

    python -m bench.multi_gpu --model /tmp/smollm2_hf --work W --gpus 2 --rm-batch-size 128 --rm-steps 30 \
        --grpo-steps 8 --out mg_1.7b.json
    python -m bench.multi_gpu --model /tmp/smollm2_hf --work W --gpus 2 --stages rm --rm-batch-size 256 \
        --rm-micro-batch-size 128 --rm-steps 30 --out mg_1.7b_256.json

A global batch bigger than one GPU holds runs there in micro-batches (``--rm-micro-batch-size``,
``--grpo-micro-batch-size``: gradient accumulation, the same update), as a team with one GPU would train it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from tabulate import tabulate

from bench.big_model import flops_per_token, peak_flops
from training import artifacts, distributed
from training.config import GRPORunConfig, RMRunConfig


def launch(module: str, config, ranks: int, log: Path) -> dict:
    cmd = distributed.command(module, config.dump(Path(config.output_dir + ".json")), ranks=ranks if ranks > 1 else None)
    # one rank sees one GPU: a single process that sees two gets nn.DataParallel from the HF Trainer (TRL refuses it)
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": "0"} if ranks == 1 else {})}
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code or not artifacts.is_complete(config.output_dir):
        return {"failed": code}
    return artifacts.read_manifest(config.output_dir)["metrics"]


def _mfu(model: str, m: dict, ranks: int) -> float | None:
    """Per-GPU model FLOPs utilisation of a reward-model run from its own pairs/s and tokens per pair."""
    peak = peak_flops(m.get("device") or "")
    if not peak or not m.get("pairs_per_s") or not m.get("tokens_per_pair"):
        return None
    return round(m["pairs_per_s"] * m["tokens_per_pair"] * flops_per_token(model) / ranks / peak, 3)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.multi_gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--rm-steps", type=int, default=40)
    p.add_argument("--rm-batch-size", type=int, default=256, help="global pairs a step (each rank takes its share)")
    p.add_argument("--rm-micro-batch-size", type=int, default=0,
                   help="pairs per forward/backward on a rank (gradient accumulation; 0 = the rank's whole share)")
    p.add_argument("--rm-lr", type=float, default=1.6e-4)
    p.add_argument("--rm-shard-optimizer", action="store_true",
                   help="each rank keeps its share of the fp32 master weights and AdamW moments (ZeRO-1)")
    p.add_argument("--grpo-steps", type=int, default=15)
    p.add_argument("--grpo-batch-size", type=int, default=64, help="global completions a step")
    p.add_argument("--grpo-micro-batch-size", type=int, default=0,
                   help="completions per forward/backward on a rank (gradient accumulation; 0 = the rank's share)")
    p.add_argument("--reward-model", help="GRPO's reward model (default: the one-GPU RM this bench trained)")
    p.add_argument("--stages", nargs="+", default=["rm", "grpo"])
    p.add_argument("--out")
    a = p.parse_args()
    work = Path(a.work)
    log = work / "multi_gpu.log"
    rows, out = [], {}
    for ranks in (1, a.gpus):
        if "rm" in a.stages:
            m = launch("training.rm", RMRunConfig(
                base_model=a.model, output_dir=str(work / f"mg_rm_{ranks}"), engine="fast", batch_size=a.rm_batch_size,
                micro_batch_size=a.rm_micro_batch_size, shard_optimizer=a.rm_shard_optimizer,
                learning_rate=a.rm_lr, max_steps=a.rm_steps, train_files=[str(work / "pairs_a.jsonl")],
                eval_pairs_file=str(work / "dev.jsonl"), logging_steps=10), ranks, log)
            out[f"rm_{ranks}"] = m
            rows.append({"stage": "reward model (fast)", "ranks": ranks, "steps": m.get("steps"),
                         "train s": m.get("train_s"), "pairs/s": m.get("pairs_per_s"),
                         "MFU per GPU": _mfu(a.model, m, ranks), "peak GB": m.get("peak_mem_gb"),
                         "optimizer GB (rank 0)": m.get("optimizer_state_gb"),
                         "dev pair acc": (m.get("eval_pairs") or {}).get("pair_acc"), "failed": m.get("failed")})
        reward_model = a.reward_model or str(work / "mg_rm_1")
        if "grpo" in a.stages and artifacts.is_complete(reward_model):
            m = launch("training.grpo", GRPORunConfig(
                base_model=a.model, output_dir=str(work / f"mg_grpo_{ranks}"), prompts_file=str(work / "grpo.jsonl"),
                reward="reward_model", reward_model=reward_model, max_steps=a.grpo_steps, batch_size=a.grpo_batch_size,
                micro_batch_size=a.grpo_micro_batch_size,
                num_generations=4, max_completion_length=128, learning_rate=5e-6, beta=0.04, logging_steps=5,
                use_vllm=False), ranks, log)
            out[f"grpo_{ranks}"] = m
            rows.append({"stage": "GRPO (RM reward)", "ranks": ranks, "steps": m.get("steps"),
                         "train s": m.get("train_s"), "completions/s": m.get("completions_per_s"),
                         "generation": m.get("generation"), "peak GB": m.get("peak_mem_gb"), "failed": m.get("failed")})
    for stage, key in (("rm", "pairs_per_s"), ("grpo", "completions_per_s")):
        one, many = out.get(f"{stage}_1", {}).get(key), out.get(f"{stage}_{a.gpus}", {}).get(key)
        if one and many:
            out[f"{stage}_speedup"] = round(many / one, 2)
            rows.append({"stage": f"{stage} speed-up, {a.gpus} GPUs / 1", "ranks": a.gpus, "x": out[f"{stage}_speedup"]})
    print(tabulate(rows, headers="keys", tablefmt="github"))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
