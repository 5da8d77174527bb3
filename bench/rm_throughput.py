"""Reward-model training throughput and quality: engines and batch sizes, one epoch each.

    python -m bench.rm_throughput --model /tmp/smollm2_hf --data $SEED_DATA \
        --variants trl:32:2e-5 fast:32:2e-5 fast:128:8e-5

A variant is ENGINE:BATCH:LR[:FLAG…]; fast-engine flags: amp | bf16_master (precision), nopack
(length-bucketed padded rows instead of packed prefix-shared rows), fusednorm | liger (kernels),
compile (torch.compile of the decoder layers). Each trains SmolLM2 on reward_pairs_train.json for one epoch, then
reports pairs/s and, beside the length baseline, dev pair accuracy (all / length-matched) and AUC
on evaluation_dev.jsonl (all / 30–49 chars). Run it beside ../shared/anchors/rm_baseline.py in one
call on the same machine and compare.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tabulate import tabulate

from bench.paper_data import export
from training import rm
from training.config import RMRunConfig
from training.reporting import Reporter


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rm_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="plain HF checkpoint of the base model")
    parser.add_argument("--data", required=True, help="directory with the paper's files")
    parser.add_argument("--variants", nargs="+", default=["trl:32:2e-5", "fast:32:2e-5"])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--save", help="keep the last variant's model here")
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rm-bench-"))
    files = export(args.data, work)
    results = []
    for i, v in enumerate(args.variants):
        engine, bs, lr, *flags = v.split(":")
        prec = [f for f in flags if f in ("amp", "bf16_master")]
        out = args.save if args.save and i == len(args.variants) - 1 else str(work / f"model-{i}")
        cfg = RMRunConfig(base_model=args.model, output_dir=out, engine=engine, batch_size=int(bs),
                          precision=prec[0] if prec else "auto", compile="compile" in flags,
                          packing="nopack" not in flags if engine == "fast" else None,
                          kernels="fused_norm" if "fusednorm" in flags else "liger" if "liger" in flags else "transformers",
                          learning_rate=float(lr), num_epochs=args.epochs, max_length=args.max_length,
                          logging_steps=50, train_files=[str(files["train"])], eval_pairs_file=str(files["dev"]),
                          eval_labels_file=str(files["labels"]))
        with Reporter() as r:
            m = rm.train(cfg, r)
        p, lab = m["eval_pairs"], m["eval_labels"]
        results.append({"variant": v, "pairs": m["train_pairs"], "train_s": m["train_s"], "prep_s": m["prep_s"],
                        "pairs_per_s": m["pairs_per_s"], "precision": m["precision"],
                        "tokens_per_pair": m["tokens_per_pair"], "kernels": m["kernels"],
                        "dev_acc": p["pair_acc"], "dev_len_matched_acc": p["pair_acc_len_matched"],
                        "len_matched_n": p["len_matched_n"], "length_dev_acc": p["length_pair_acc"],
                        "length_len_matched_acc": p["length_pair_acc_len_matched"], "auc": lab["auc"],
                        "band_auc": lab["band_auc"], "length_auc": lab["length_auc"],
                        "length_band_auc": lab["length_band_auc"], "peak_mem_gb": m["peak_mem_gb"],
                        "device": m["device"]})
        print(json.dumps(results[-1]), flush=True)
    print(tabulate(results, headers="keys", tablefmt="github"))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
