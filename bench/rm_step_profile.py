"""Where does a reward-model training step go? Times forward+backward+AdamW on one fixed batch of
the paper's pairs under several settings (precision, TF32, attention kernel, torch.compile).

    python -m bench.rm_step_profile --model /tmp/smollm2_hf --data $SEED_DATA --pairs 64
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate

from bench.paper_data import pairs
from training.scoring import chat_texts, last_token_rewards


def main() -> int:
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    p = argparse.ArgumentParser(prog="python -m bench.rm_step_profile", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    rows = pairs(Path(a.data) / "reward_pairs_train.json")[: a.pairs]
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.padding_side = "right"
    tok.pad_token = tok.pad_token or tok.eos_token
    texts = chat_texts(tok, [r["prompt"] for r in rows] * 2, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=256, add_special_tokens=False)
    ids, mask = enc["input_ids"].cuda(), enc["attention_mask"].cuda()
    out = []
    settings = [("fp32+autocast", "sdpa", False, False, False), ("fp32+autocast+tf32", "sdpa", True, False, False),
                ("fp32+autocast eager-attn", "eager", False, False, False), ("bf16 weights", "sdpa", True, True, False),
                ("fp32+autocast+tf32 compiled", "sdpa", True, False, True)]
    for name, attn, tf32, bf16, compiled in settings:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        model = AutoModelForSequenceClassification.from_pretrained(
            a.model, num_labels=1, dtype=torch.bfloat16 if bf16 else torch.float32, attn_implementation=attn).cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        fn = torch.compile(last_token_rewards, dynamic=False) if compiled else last_token_rewards

        def step(model=model, opt=opt, fn=fn):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                r = fn(model, ids, mask)
            loss = -torch.nn.functional.logsigmoid(r[: len(rows)] - r[len(rows):]).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        t0 = time.time()
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
        dt = (time.time() - t0) / a.steps
        out.append({"setting": name, "ms_per_step": round(dt * 1000, 1), "pairs_per_s": round(len(rows) / dt, 1),
                    "tokens": int(mask.sum()), "padded": ids.numel()})
        print(out[-1], flush=True)
        del model, opt
        torch.cuda.empty_cache()
    print(tabulate(out, headers="keys", tablefmt="github"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
