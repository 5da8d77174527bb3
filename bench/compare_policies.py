"""Two policies of one ``bench.grpo_gain --stages eval --out`` run, head to head on the same prompts.

    python -m bench.compare_policies eval.json grpo_mrpo_judge_s0 grpo_judge_s0 [--scorer evaluator]

The eval JSON keeps every policy's per-prompt scores and lengths (``per_prompt``), so any pair compares
afterwards without the GPU: mean gain of A over B ± SE, the part the length difference explains, and A's
win rate (95% interval), also on the prompts whose two outputs have similar length.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.metrics import paired_comparison


def compare(eval_json: str | Path, a: str, b: str, scorer: str = "evaluator") -> dict:
    per = json.loads(Path(eval_json).read_text(encoding="utf-8")).get("per_prompt")
    if not per:
        raise SystemExit(f"{eval_json}: no per_prompt scores (written by bench.grpo_gain's eval since 2026-11-27)")
    for name in (a, b):
        if name not in per:
            raise SystemExit(f"{eval_json}: no policy {name!r}; there are {sorted(per)}")
        if scorer not in per[name]:
            raise SystemExit(f"{eval_json}: {name} has no {scorer!r} scores; there are {sorted(per[name])}")
    c = paired_comparison(per[a][scorer], per[b][scorer], per[a]["chars"], per[b]["chars"])
    return {"a": a, "b": b, "scorer": scorer, "n": len(per[a][scorer]), **c}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare_policies", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_json")
    p.add_argument("a", help="the policy compared")
    p.add_argument("b", help="the reference policy")
    p.add_argument("--scorer", default="evaluator", help="evaluator | train_rm | judge")
    args = p.parse_args(argv)
    c = compare(args.eval_json, args.a, args.b, args.scorer)
    z = c["gain_beyond_length"] / c["gain_se"] if c["gain_se"] else float("nan")
    print(f"{c['a']} vs {c['b']} ({c['scorer']}, n={c['n']}): gain {c['gain']:+.3f} ± {c['gain_se']:.3f}, "
          f"length explains {c['explained_by_length']:+.3f}, beyond length {z:+.1f} SE, "
          f"win {c['win_rate']:.2f} [{c['win_rate_ci'][0]:.2f}, {c['win_rate_ci'][1]:.2f}], similar length "
          + (f"{c['win_rate_len_matched']:.2f} ({c['len_matched_n']})" if c["win_rate_len_matched"] is not None
             else "-"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
