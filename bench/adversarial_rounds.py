"""Does adversarial training make the judge catch what fooled it? (issue 11, on a GPU)

    python -m bench.grpo_gain --model $MODEL --data $SEED_DATA --work /root/keep/gain --stages judge
    python -m bench.adversarial_rounds --model $MODEL --data $SEED_DATA --work /root/keep/gain --rounds 2

Path B's adversarial step, at scale and measured. Each round: the Generator (the base model, Path B's
prompt and initial bad-writing strategies S_G) plants flaws in greetings for GRPO *training* prompts;
the current judge scores them under the initial S_D at a threshold calibrated on training pairs (never
the dev sets); the plants it passes ("fooled") become negatives, and the next judge is the current one
trained one more short epoch on them plus a replay of its training rows (as ``judge_principles`` does
with ``retrain_judge``). Reported per round, before and after the retrain: the share caught of this
round's plants (train half: the fooling ones the judge was trained on; held-out half: plants for
other prompts, never trained on), and AUC on ``evaluation_dev.jsonl`` (must not fall).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from tabulate import tabulate

from agents import principles
from agents.judging import calibrate
from resources.llm.local import LocalBackend
from resources.llm.runtime import LLMRuntime
from training import judge as judge_lib
from training.config import JudgeRunConfig
from training.data import read_jsonl, write_jsonl
from training.reporting import Reporter


def _p(margins: list[float]) -> list[float]:
    return [1 / (1 + math.exp(-max(min(m, 60.0), -60.0))) for m in margins]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.adversarial_rounds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the Generator (base model)")
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True, help="bench.grpo_gain's work directory (its judge and files)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--plants", type=int, default=256, help="planted greetings per round (half trained on)")
    p.add_argument("--replay", type=int, default=4, help="replayed training rows per fooling example")
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--out")
    a = p.parse_args()
    work = Path(a.work)
    rng = random.Random(0)
    prompts = [r["prompt"] for r in read_jsonl(work / "grpo.jsonl", ("prompt",))]
    train_rows = read_jsonl(work / "judge.jsonl", ("prompt", "response", "label"))
    labels = read_jsonl(work / "labels.jsonl", ("prompt", "response", "label"))
    pairs = read_jsonl(work / "pairs_a.jsonl", ("prompt", "chosen", "rejected"))[:300]  # calibration: training pairs
    generator = LLMRuntime(LocalBackend(a.model, batch_size=64, progress=False))
    s_d = list(principles.INITIAL_S_D)
    current = str(work / "judge")
    rows, history = [], []
    for rnd in range(1, a.rounds + 1):
        judge = judge_lib.MarginModel.load(current)
        cal = calibrate(_p(judge.score(s_d, [x["prompt"] for x in pairs] * 2,
                                       [x["chosen"] for x in pairs] + [x["rejected"] for x in pairs])),
                        [1] * len(pairs) + [0] * len(pairs))
        chosen = rng.sample(prompts, a.plants)
        results = generator.structured(principles.generator_requests(chosen, list(principles.INITIAL_S_G), rnd),
                                       principles.FlawedGreeting)
        plants = [{"prompt": q, "response": r.parsed["greeting"], "flaws": r.parsed["flaws"]}
                  for q, r in zip(chosen, results, strict=True) if r.ok and r.parsed["greeting"].strip()]
        half = len(plants) // 2
        train_plants, held = plants[:half], plants[half:]

        def caught(j: judge_lib.MarginModel, items: list[dict], cal=cal) -> list[bool]:
            ps = _p(j.score(s_d, [x["prompt"] for x in items], [x["response"] for x in items]))
            return [q < cal.threshold for q in ps]

        def eval_auc(j: judge_lib.MarginModel) -> float | None:
            from training.rm_eval import evaluate_labels

            return evaluate_labels(lambda ps, rs: j.score(s_d, ps, rs), labels)["auc"]

        before_train, before_held = caught(judge, train_plants), caught(judge, held)
        fooling = [x for x, c in zip(train_plants, before_train, strict=True) if not c]
        auc_before = eval_auc(judge)
        del judge
        if not fooling:
            history.append({"round": rnd, "plants": len(plants), "fooling": 0, "note": "nothing fooled the judge"})
            continue
        replay = rng.sample(train_rows, min(len(train_rows), a.replay * len(fooling)))
        new_rows = [{"prompt": x["prompt"], "response": x["response"], "label": 0, "source": "adversarial",
                     "principles": rng.sample(s_d, rng.randint(len(s_d) // 2, len(s_d)))} for x in fooling]
        data = work / f"adversarial-{rnd}.jsonl"
        write_jsonl(data, new_rows + replay)
        out_dir = work / f"judge-adv-{rnd}"
        m = judge_lib.train(JudgeRunConfig(base_model=current, output_dir=str(out_dir), train_file=str(data),
                                           num_epochs=1, learning_rate=a.learning_rate, batch_size=64,
                                           principle_ablations=False, rule_eval=False, logging_steps=10), Reporter())
        current = str(out_dir)
        judge = judge_lib.MarginModel.load(current)
        after_fooling = caught(judge, fooling)
        after_held = caught(judge, held)
        auc_after = eval_auc(judge)
        del judge
        row = {"round": rnd, "plants": len(plants), "threshold_p": round(cal.threshold, 4),
               "caught_train_before": round(sum(before_train) / len(before_train), 3),
               "fooling": len(fooling), "fooling_caught_after": round(sum(after_fooling) / len(fooling), 3),
               "held_out": len(held), "held_caught_before": round(sum(before_held) / len(held), 3),
               "held_caught_after": round(sum(after_held) / len(held), 3),
               "eval_auc_before": auc_before, "eval_auc_after": auc_after, "train_s": m["train_s"],
               "samples": [x["response"] for x in fooling[:5]]}
        history.append(row)
        rows.append({k: v for k, v in row.items() if k != "samples"})
        print(json.dumps(row, ensure_ascii=False), flush=True)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    if a.out:
        Path(a.out).write_text(json.dumps(history, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
