"""Does SFT then GRPO make better greetings, beyond getting longer? (issue 6, on a GPU)

    python -m bench.policy_gain --model /tmp/smollm2_hf --data $SEED_DATA --grpo-steps 40

SFT on the paper's sft.json (one epoch), a reward model on its training pairs (fast engine), GRPO
from the SFT model with that reward at the anchor's settings; then base, SFT and GRPO write one
greeting for each of the first N GRPO test prompts (greedy), scored by the reward model and by the
principle-guided judge (the embedded SmolLM2 with the initial S_D). Reports each score's gain over
the base model, the part of it the change in mean length predicts, and the rest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tabulate import tabulate

from bench.paper_data import export
from training import grpo, rm, sft
from training.config import GRPORunConfig, RMRunConfig, SFTRunConfig
from training.data import write_jsonl
from training.generation import generate
from training.metrics import distinct_n, length_adjusted_gain
from training.reporting import Reporter
from training.rewards import message_text
from training.scoring import RewardScorer


def main() -> int:
    import pyarrow.parquet as pq

    from agents import principles
    from resources.llm.local import LocalBackend
    from resources.llm.runtime import LLMRuntime

    p = argparse.ArgumentParser(prog="python -m bench.policy_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--grpo-steps", type=int, default=40)
    p.add_argument("--grpo-lr", type=float, default=1e-6, help="the anchor's 1e-6 barely moves the policy in 40 steps")
    p.add_argument("--eval-prompts", type=int, default=128)
    p.add_argument("--out")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="policy-gain-"))
    files = export(a.data, work)
    data = Path(a.data)
    write_jsonl(work / "sft.jsonl", [{"prompt": r["instruction"] + (("\n" + r["input"]) if r.get("input") else ""),
                                      "response": r["output"]}
                                     for r in json.loads((data / "sft.json").read_text(encoding="utf-8"))])
    write_jsonl(work / "grpo.jsonl", [{"prompt": message_text(r["prompt"])}
                                      for r in pq.read_table(data / "grpo/train.parquet").to_pylist()])
    test = [message_text(r["prompt"]) for r in pq.read_table(data / "grpo/test.parquet").to_pylist()][: a.eval_prompts]
    with Reporter() as r:
        s = sft.train(SFTRunConfig(base_model=a.model, output_dir=str(work / "sft"), train_file=str(work / "sft.jsonl"),
                                   batch_size=32, num_epochs=1, learning_rate=5e-5, logging_steps=20), r)
        m = rm.train(RMRunConfig(base_model=a.model, output_dir=str(work / "rm"), engine="fast", batch_size=256,
                                 learning_rate=1.6e-4, train_files=[str(files["train"])], logging_steps=20), r)
        g = grpo.train(GRPORunConfig(base_model=str(work / "sft"), output_dir=str(work / "grpo"),
                                     prompts_file=str(work / "grpo.jsonl"), reward_model=str(work / "rm"),
                                     max_steps=a.grpo_steps, batch_size=64, num_generations=4,
                                     max_completion_length=128, learning_rate=a.grpo_lr, beta=0.001, logging_steps=5,
                                     use_vllm=False), r)
    print(json.dumps({"sft": s, "rm_pairs_per_s": m["pairs_per_s"], "grpo": {k: v for k, v in g.items()
                                                                          if k not in ("before", "after")}},
                     ensure_ascii=False, default=str), flush=True)
    scorer = RewardScorer(str(work / "rm"))
    judge = LLMRuntime(LocalBackend(a.model, batch_size=64, progress=False))
    outs, res = {}, {}
    for name, path in (("base", a.model), ("sft", str(work / "sft")), ("grpo", str(work / "grpo"))):
        outs[name] = generate(path, test, max_new_tokens=128, batch_size=64)
        rm_scores = scorer.score(test, outs[name])
        judged = principles.detect(judge, list(zip(test, outs[name], strict=True)), principles.INITIAL_S_D,
                                   tag=f"gain-{name}")
        labels = [float(x.parsed["label"]) if x.ok else 0.0 for x in judged]
        res[name] = {"rm": rm_scores, "judge": labels, "len": [len(o) for o in outs[name]]}
    rows = []
    for name in ("base", "sft", "grpo"):
        r_ = res[name]
        row = {"policy": name, "rm_mean": round(sum(r_["rm"]) / len(r_["rm"]), 3),
               "judge_rate": round(sum(r_["judge"]) / len(r_["judge"]), 3),
               "mean_chars": round(sum(r_["len"]) / len(r_["len"]), 1), "distinct_2": round(distinct_n(outs[name], 2) or 0.0, 3)}
        if name != "base":
            for key in ("rm", "judge"):
                gain = length_adjusted_gain(res["base"][key], r_[key], res["base"]["len"], r_["len"])
                row[f"{key}_gain"] = round(gain["gain"], 3)
                row[f"{key}_gain_from_length"] = round(gain["explained_by_length"], 3)
                row[f"{key}_gain_beyond_length"] = round(gain["gain_beyond_length"], 3)
        rows.append(row)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    for name in ("base", "sft", "grpo"):
        print(f"{name}: {outs[name][:3]}")
    if a.out:
        Path(a.out).write_text(json.dumps({"rows": rows, "samples": {k: v[:10] for k, v in outs.items()}},
                                          ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
