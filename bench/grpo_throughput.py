"""GRPO step time at the anchor's settings: 64 completions per step (16 prompts × 4), at most 128
new tokens, reward = a trained reward model, bf16 — for each generation path.

    python -m bench.grpo_throughput --policy /tmp/smollm2_hf --reward-model /tmp/rm --data $SEED_DATA \
        --steps 10 --generation graph generate

Run it beside ../shared/anchors/grpo_baseline.py (STEPS=10) in one call on the same machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tabulate import tabulate

from training import grpo
from training.config import GRPORunConfig
from training.data import write_jsonl
from training.reporting import Reporter
from training.rewards import message_text


def main() -> int:
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(prog="python -m bench.grpo_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--reward-model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--generation", nargs="+", default=["graph", "generate"])
    parser.add_argument("--eval-prompts", type=int, default=128)
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    train = [{"prompt": message_text(r["prompt"])} for r in pq.read_table(f"{args.data}/grpo/train.parquet").to_pylist()]
    test = [{"prompt": message_text(r["prompt"])} for r in pq.read_table(f"{args.data}/grpo/test.parquet").to_pylist()]
    write_jsonl(work / "train.jsonl", train)
    write_jsonl(work / "test.jsonl", test[: args.eval_prompts])
    results = []
    for gen in args.generation:
        cfg = GRPORunConfig(base_model=args.policy, output_dir=str(work / f"policy-{gen}"),
                            prompts_file=str(work / "train.jsonl"), eval_prompts_file=str(work / "test.jsonl"),
                            max_eval_prompts=args.eval_prompts, reward_model=args.reward_model, max_steps=args.steps,
                            batch_size=args.batch, num_generations=args.num_generations, max_completion_length=128,
                            learning_rate=1e-6, beta=0.001, temperature=1.0, logging_steps=5, generation=gen,
                            use_vllm=False)
        with Reporter() as r:
            m = grpo.train(cfg, r)
        results.append({"generation": gen, "steps": m["steps"], "train_s": m["train_s"], "s_per_step": m["s_per_step"],
                        "completions_per_s": m["completions_per_s"], "reward_first": m["reward_first"],
                        "reward_last": m["reward_last"], "len_last": m["completion_length_last"],
                        "kl_last": m["kl_last"], "rm_before": m["before"]["reward_mean"],
                        "rm_after": m["after"]["reward_mean"], "chars_before": m["before"]["mean_chars"],
                        "chars_after": m["after"]["mean_chars"], "peak_mem_gb": m["peak_mem_gb"], "device": m["device"]})
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    print(tabulate(results, headers="keys", tablefmt="github"))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
