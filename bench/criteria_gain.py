"""Do Writer-R1's automatic criteria rank the paper's greetings like humans do, beyond length?

    python -m bench.criteria_gain --data $ZHUFU_SEED_DATA [--model PATH|embedded] [--pairs 8] [--labels 100]

Runs the Grounded-Theory workflow (``agents.grounded_theory``: open coding of the paper's training
preference pairs in batches until saturation, LanceDB axial coding, selective coding) for the
greeting scenario, then scores `evaluation_dev.jsonl` items with the resulting criteria
(``agents.criteria``: per-criterion P(是), weighted total) and reports the total's AUC beside the
length baseline, on all items and the 30–49-character band; and the ablation: the hand-written
Path B principles (``agents.principles.INITIAL_S_D``) as equally weighted criteria, scored the same
way. The paper's pairs carry no human memo, so every concept here is the model's own (no note
fallback). Evaluation items are a fixed stratified sample (``--labels``, both labels equally). Calls
are not recorded (in-memory call log); ``--model`` is any local path or model-store name, ``--judge-model``
the scorer when it differs (e.g. the warm-start judge, ``smollm2-135m-instruct+judge``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from agents import criteria as crit
from agents import grounded_theory as gt
from agents.principles import INITIAL_S_D
from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs
from training.metrics import BAND, auc, in_band, length_baseline


def stratified(items: list[dict], n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pos = [i for i in items if i["label"] == 1]
    neg = [i for i in items if i["label"] == 0]
    rng.shuffle(pos)
    rng.shuffle(neg)
    return pos[: n // 2] + neg[: n - n // 2]


def report(name: str, scores: list[float | None], items: list[dict]) -> list[list]:
    rows = []
    for subset, keep in (("all", lambda n: True), (f"band_{BAND[0]}_{BAND[1]}", in_band)):
        idx = [i for i, it in enumerate(items) if keep(len(it["response"])) and scores[i] is not None]
        ys = [items[i]["label"] for i in idx]
        lens = [len(items[i]["response"]) for i in idx]
        _, length_auc, _ = length_baseline(lens, ys)
        rows.append([name, subset, len(idx), auc([scores[i] for i in idx], ys), length_auc])
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.criteria_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("ZHUFU_SEED_DATA"), help="the paper's data directory")
    p.add_argument("--model", default="embedded", help="agent model (and judge, unless --judge-model): a local "
                   "path or a model-store name ('embedded', 'smollm2-135m-instruct+judge' = the warm-start judge)")
    p.add_argument("--judge-model", default="", help="the model that scores the criteria (default: --model)")
    p.add_argument("--pairs", type=int, default=4, help="training pairs per open-coding batch")
    p.add_argument("--max-batches", type=int, default=3)
    p.add_argument("--max-dimensions", type=int, default=3)
    p.add_argument("--labels", type=int, default=40, help="evaluation_dev items scored (stratified; 0 = all)")
    p.add_argument("--batch-size", type=int, default=16, help="local backend batch size")
    p.add_argument("--no-ablation", action="store_true", help="skip the hand-written principles")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args()
    if not a.data:
        p.error("--data (or ZHUFU_SEED_DATA) is required")
    from resources.embeddings import Embedder
    from resources.llm.local import LocalBackend
    from resources.llm.runtime import LLMRuntime
    from resources.model_store import ModelStore
    from resources.vectors import VectorStore

    data = Path(a.data)
    t0 = time.time()
    path = ModelStore().resolve(a.model)
    runtime = LLMRuntime(LocalBackend(path, model_id=a.model, batch_size=a.batch_size, progress=False))
    scorer = runtime if not a.judge_model else LLMRuntime(LocalBackend(
        ModelStore().resolve(a.judge_model), model_id=a.judge_model, batch_size=a.batch_size, progress=False))
    embedder = Embedder()
    store = VectorStore(tempfile.mkdtemp(prefix="criteria-gain-"))
    rng = random.Random(0)
    pairs = read_pairs(data / "reward_pairs_train.json")
    rng.shuffle(pairs)
    samples = [gt.Sample(r["prompt"], r["chosen"], r["rejected"], "igniting-pairs-train")
               for r in pairs[: a.pairs * a.max_batches]]
    config = gt.WorkflowConfig(batch_size=a.pairs, max_batches=a.max_batches, max_dimensions=a.max_dimensions,
                               max_criteria=1, note_fallback=False)
    flow = gt.run_all(runtime, embedder, store, {"greeting": samples}, config, table=lambda s: f"gt_concepts_{s}")
    w = flow["greeting"]
    t_workflow = time.time() - t0
    criteria = [crit.Criterion("greeting", c.dimension.dimension, c.name, c.description, tuple(c.rubric), c.weight)
                for c in w.criteria]
    items = read_labels(data / "evaluation_dev.jsonl")
    items = stratified(items, a.labels) if a.labels else items
    pairs_in = [(i["prompt"], i["response"]) for i in items]
    rows = []
    results: dict = {"model": a.model, "judge_model": a.judge_model or a.model, "criteria": [c.__dict__ for c in criteria], "curve": [p.__dict__ for p in w.coding.curve],
                     "concepts": [c.concept for c in w.coding.concepts()],
                     "rejected": sum(not c.ok for c in w.coding.codes), "workflow_s": round(t_workflow, 1)}
    if criteria:
        auto = crit.score_responses(scorer, pairs_in, criteria, tag="bench-auto")
        rows += report("auto criteria", [s.total for s in auto], items)
    if not a.no_ablation:
        hand = crit.score_responses(scorer, pairs_in, crit.principles_as_criteria("greeting", INITIAL_S_D),
                                    tag="bench-hand")
        rows += report("hand-written principles", [s.total for s in hand], items)
    results["table"] = rows
    results["wall_s"] = round(time.time() - t0, 1)
    print(f"criteria ({len(criteria)}; workflow {t_workflow:.0f}s, concepts {len(results['concepts'])}, "
          f"rejected answers {results['rejected']}):")
    for c in criteria:
        print(f"  [{c.dimension}] {c.name} w={c.weight:.2f}: {c.description}")
    print(tabulate(rows, headers=["scorer", "subset", "n", "AUC", "length AUC"], floatfmt=".3f"))
    print(f"wall {results['wall_s']}s")
    if a.out:
        Path(a.out).write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
