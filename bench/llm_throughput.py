"""Throughput of the ``local`` backend, batched, against a naive one-request-at-a-time loop.

Same model, same prompts, same sampling settings. The naive loop is what one would write by
hand: ``model.generate`` per prompt with ``do_sample``. Prints a table; add the figures to
bench/RESULTS.md with the date, machine and command.

    python -m bench.llm_throughput --n 64 --batch-size 32 --max-new-tokens 64
    python -m bench.llm_throughput --model /path/to/checkpoint --device cuda --n 256 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from resources.llm.local import LocalBackend
from resources.llm.types import ChatRequest, Sampling
from resources.model_store import EMBEDDED_MODEL, ModelStore

PROMPTS = [
    "给外婆写一段八十大寿的祝福", "中秋节祝福语 简短", "祝同事升职的祝福", "给好友的新婚祝福，要温暖",
    "春节给客户的祝福短信", "高考前给学生的鼓励", "乔迁新居祝福 古风", "给妈妈的母亲节祝福",
]


def _requests(n: int, max_new_tokens: int) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + f"（第{i}条）"}],
                        sampling=Sampling(temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens, seed=i))
            for i in range(n)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def naive_loop(path: str, reqs: list[ChatRequest], device: str) -> tuple[float, int]:
    tok = AutoTokenizer.from_pretrained(path)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    tokens = 0
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for r in reqs:
            ids = tok.apply_chat_template(r.messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True).to(device)
            torch.manual_seed(r.sampling.seed)
            out = model.generate(**ids, do_sample=True, temperature=r.sampling.temperature, top_p=r.sampling.top_p,
                                 max_new_tokens=r.sampling.max_new_tokens, pad_token_id=tok.eos_token_id)
            tokens += out.shape[1] - ids["input_ids"].shape[1]
    _sync(device)
    return time.perf_counter() - t0, tokens


def batched(path: str, reqs: list[ChatRequest], device: str, batch_size: int) -> tuple[float, int]:
    backend = LocalBackend(path, batch_size=batch_size, device=device, progress=False)
    backend.load()
    backend.generate(reqs[: min(len(reqs), batch_size)])  # warm-up (kernels, allocator)
    _sync(device)
    t0 = time.perf_counter()
    gens = backend.generate(reqs)
    _sync(device)
    return time.perf_counter() - t0, sum(g.tokens_out or 0 for g in gens)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=EMBEDDED_MODEL, help="model name in the store, path or hub id")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=32, help="number of completions")
    p.add_argument("--naive-n", type=int, default=None, help="completions for the naive loop (default: --n)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[16])
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--json", help="also write the rows to this JSON file")
    a = p.parse_args()

    path = ModelStore().resolve(a.model)
    reqs = _requests(a.n, a.max_new_tokens)
    naive_reqs = reqs[: a.naive_n or a.n]
    rows = []
    secs, toks = naive_loop(path, naive_reqs, a.device)
    rows.append({"mode": "naive loop", "batch": 1, "n": len(naive_reqs), "seconds": secs, "tokens": toks})
    for bs in a.batch_size:
        secs, toks = batched(path, reqs, a.device, bs)
        rows.append({"mode": "batched", "batch": bs, "n": len(reqs), "seconds": secs, "tokens": toks})
    base = rows[0]["n"] / rows[0]["seconds"]
    base_tok = rows[0]["tokens"] / rows[0]["seconds"]
    device = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"\nmodel {a.model} · device {a.device} ({device}) · torch {torch.__version__} · "
          f"max_new_tokens {a.max_new_tokens} · temperature 0.8 · top_p 0.95")
    print(f"{'mode':<12}{'batch':>6}{'n':>6}{'seconds':>10}{'compl/s':>10}{'tok/s':>10}{'x compl':>9}{'x tok':>8}")
    for r in rows:
        cps, tps = r["n"] / r["seconds"], r["tokens"] / r["seconds"]
        r.update(completions_per_s=cps, tokens_per_s=tps, speedup_completions=cps / base, speedup_tokens=tps / base_tok)
        print(f"{r['mode']:<12}{r['batch']:>6}{r['n']:>6}{r['seconds']:>10.2f}{cps:>10.2f}{tps:>10.1f}"
              f"{cps / base:>9.2f}{tps / base_tok:>8.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device, "model": a.model, "max_new_tokens": a.max_new_tokens, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
