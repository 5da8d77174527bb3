"""Path B: the adversarially optimized, principle-guided LLM judge.

judge_principles (the Generator / Detector / Reflector / Optimizer loop, every iteration an
event) → judge_scores (the judge with the best S_D scores candidates) and judge_agreement
(every iteration's S_D against human labels, with a learning curve).
"""

import base64
import io
import json

import dagster as dg
from pydantic import Field

from agents import principles
from agents.principles import Example, Iteration, LoopConfig
from assets.ingest import human_labels
from assets.partitions import prompt_batches
from assets.path_a import _items, candidates
from resources import LLMResource, WarehouseResource
from training.metrics import labeller_report, report_markdown
from warehouse.ids import content_id
from warehouse.schema import AgreementRow, JudgePrincipleRow, JudgeScoreRow

GROUP = "path_b"


class PrinciplesConfig(dg.Config):
    iterations: int = Field(default=3, description="adversarial iterations after the initial strategies")
    generated_per_iteration: int = Field(default=4, description="flawed greetings the Generator writes per iteration")
    real_per_iteration: int = Field(default=6, description="real labelled examples the Detector judges per iteration")
    heldout_size: int = Field(default=8, description="held-out labelled items that pick the best S_D (0 = all)")
    patience: int = Field(default=2, description="early stop after this many iterations without improvement")
    source: str | None = Field(default=None, description="only human labels from this source")
    seed: int = 0


def labelled_splits(warehouse: WarehouseResource, source: str | None, seed: int):
    df = warehouse.get().sql(
        "SELECT id, prompt, response, label FROM human_labels_latest WHERE ? IS NULL OR source = ? ORDER BY id",
        [source, source])
    examples = [Example(r["id"], r["prompt"], r["response"], int(r["label"])) for r in df.iter_rows(named=True)]
    return principles.split_examples(examples, seed)


def _row(loop: str, it: Iteration, model: str) -> JudgePrincipleRow:
    return JudgePrincipleRow(loop_id=loop, iteration=it.iteration, s_g=it.s_g, s_d=it.s_d, suggestions=it.suggestions,
                             heldout_accuracy=it.heldout_accuracy, detector_errors=it.detector_errors, model=model,
                             prompt_version=principles.PROMPT_VERSION)


def recorded_iterations(warehouse: WarehouseResource, loop: str) -> list[Iteration]:
    df = warehouse.get().sql(
        "SELECT iteration, s_g, s_d, suggestions, heldout_accuracy, detector_errors FROM judge_principles_latest "
        "WHERE loop_id = ? ORDER BY iteration", [loop])

    return [Iteration(r["iteration"], list(r["s_g"]), list(r["s_d"]), json.loads(r["suggestions"]),
                      r["heldout_accuracy"], r["detector_errors"]) for r in df.iter_rows(named=True)]


@dg.asset(group_name=GROUP, deps=[human_labels], kinds={"duckdb"}, code_version=f"1-{principles.PROMPT_VERSION}",
          description="The adversarial loop: S_G and S_D per iteration with the suggestions used and the Detector's "
          "held-out accuracy. Its value is the S_D with the best held-out accuracy. A crashed run resumes from "
          "the recorded iterations.")
def judge_principles(context: dg.AssetExecutionContext, config: PrinciplesConfig, warehouse: WarehouseResource,
                     llm: LLMResource) -> dg.MaterializeResult:
    train, heldout, _ = labelled_splits(warehouse, config.source, config.seed)
    if config.heldout_size:
        heldout = heldout[: config.heldout_size]
    if not train or not heldout:
        raise dg.Failure("judge_principles needs human labels (materialize human_labels)")
    loop_cfg = LoopConfig(iterations=config.iterations, generated_per_iteration=config.generated_per_iteration,
                          real_per_iteration=config.real_per_iteration, patience=config.patience, seed=config.seed)
    rt = llm.runtime(context)
    loop = principles.loop_id(rt.model_id, train, heldout, loop_cfg)
    done = recorded_iterations(warehouse, loop)
    if done:
        context.log.info(f"loop {loop}: resuming after iteration {done[-1].iteration}")
    wh = warehouse.get()

    def checkpoint(it: Iteration) -> None:  # each iteration is its own event, committed at once
        wh.append([_row(loop, it, rt.model_id)], run_id=context.run_id, asset_key="judge_principles/checkpoint")
        context.log.info(f"iteration {it.iteration}: held-out accuracy {it.heldout_accuracy}, "
                         f"{it.detector_errors} detector errors, {len(it.s_d)} principles")

    history = principles.run_loop(rt, train, heldout, loop_cfg, done=done, on_iteration=checkpoint)
    chosen = principles.best(history)
    rows = [_row(loop, it, rt.model_id) for it in history]
    curve = "\n".join(f"| {h.iteration} | {h.heldout_accuracy} | {h.detector_errors} | {len(h.s_d)} | {len(h.s_g)} |"
                      for h in history)
    result = warehouse.record(context, rows, main_table="judge_principles", metadata={
        "loop_id": loop, "best_iteration": chosen.iteration,
        "best_heldout_accuracy": chosen.heldout_accuracy if chosen.heldout_accuracy is not None else -1.0,
        "best_principles_id": rows[chosen.iteration].event_id(),
        "best_s_d": dg.MetadataValue.md("\n".join(f"{i + 1}. {r}" for i, r in enumerate(chosen.s_d))),
        "iterations": dg.MetadataValue.md("| iteration | held-out acc | detector errors | #S_D | #S_G |\n|---|---|---|---|---|\n"
                                          + curve),
        "train_items": len(train), "heldout_items": len(heldout), **rt.stats.as_metadata()})
    return result


def chosen_principles(warehouse: WarehouseResource, principles_id: str | None):
    """The S_D to judge with: the given event id, else the best-held-out S_D of the newest loop."""
    wh = warehouse.get()
    if principles_id:
        df = wh.sql("SELECT id, s_d FROM judge_principles WHERE id = ?", [principles_id])
    else:
        df = wh.sql("""
            WITH newest AS (SELECT loop_id FROM judge_principles ORDER BY created_at DESC LIMIT 1)
            SELECT id, s_d FROM judge_principles_latest WHERE loop_id = (SELECT loop_id FROM newest)
            ORDER BY coalesce(heldout_accuracy, 0) DESC, iteration LIMIT 1""")
    if not df.height:
        raise dg.Failure(f"no judge principles {'with id ' + principles_id if principles_id else 'yet'}: "
                         "materialize judge_principles first")
    return df["id"][0], list(df["s_d"][0])


class JudgeScoresConfig(dg.Config):
    principles_id: str | None = Field(default=None, description="judge_principles event id (default: best of newest loop)")
    with_score: bool = Field(default=False, description="also ask for a 1–10 score")


@dg.asset(group_name=GROUP, partitions_def=prompt_batches, deps=[candidates, judge_principles], kinds={"duckdb"},
          code_version=f"1-{principles.PROMPT_VERSION}",
          description="The principle-guided judge's 0/1 (and optional 1–10 score) with a reason per candidate, "
          "stored with the S_D version used.")
def judge_scores(context: dg.AssetExecutionContext, config: JudgeScoresConfig, warehouse: WarehouseResource,
                 llm: LLMResource) -> dg.MaterializeResult:
    pid, s_d = chosen_principles(warehouse, config.principles_id)
    items, _ = _items(warehouse, context.partition_key)
    rt = llm.runtime(context)
    results = principles.detect(rt, [(it.prompt, it.response) for it in items], s_d, tag="score",
                                with_score=config.with_score)
    rows = [JudgeScoreRow(candidate_id=it.item_id, principles_id=pid, label=r.parsed["label"] if r.ok else None,
                          score=float(r.parsed["score"]) if r.ok and "score" in r.parsed else None,
                          reason=r.parsed["reason"] if r.ok else f"[{r.status}] {r.error}", llm_call_id=r.request_key)
            for it, r in zip(items, results, strict=True)]
    labels = [r.label for r in rows if r.label is not None]
    return warehouse.record(context, rows, main_table="judge_scores", metadata={
        "principles_id": pid, "excellence_rate": sum(labels) / len(labels) if labels else -1.0,
        "parse_failures": len(rows) - len(labels), **rt.stats.as_metadata()})


class JudgeAgreementConfig(dg.Config):
    sample_size: int = Field(default=8, description="evaluation-split items (0 = all)")
    source: str | None = None
    seed: int = Field(default=0, description="must match judge_principles' seed (same split)")


def _learning_curve_png(points: list[tuple[int, float | None, float | None]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    its = [p[0] for p in points]
    ax.plot(its, [p[1] for p in points], marker="o", label="judge accuracy")
    ax.plot(its, [p[2] for p in points], linestyle="--", label="length baseline")
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy vs human labels")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@dg.asset(group_name="evaluation", deps=[judge_principles], kinds={"duckdb"}, code_version="1",
          description="Every iteration's S_D as a judge on the evaluation split: accuracy, F1, kappa, Spearman on "
          "all items and the 30–49-char band, beside the length baseline, with a learning curve.")
def judge_agreement(context: dg.AssetExecutionContext, config: JudgeAgreementConfig, warehouse: WarehouseResource,
                    llm: LLMResource) -> dg.MaterializeResult:
    _, _, evaluation = labelled_splits(warehouse, config.source, config.seed)
    if config.sample_size:
        evaluation = evaluation[: config.sample_size]
    wh = warehouse.get()
    loop = wh.sql("SELECT loop_id FROM judge_principles ORDER BY created_at DESC LIMIT 1")
    if not loop.height:
        raise dg.Failure("materialize judge_principles first")
    its = wh.sql("SELECT iteration, s_d FROM judge_principles_latest WHERE loop_id = ? ORDER BY iteration",
                 [loop["loop_id"][0]])
    rt = llm.runtime(context)
    truth = [e.label for e in evaluation]
    lengths = [len(e.response) for e in evaluation]
    eval_set = content_id(sorted(e.item_id for e in evaluation))
    report, points = [], []
    for it in its.iter_rows(named=True):
        res = principles.detect(rt, [(e.prompt, e.response) for e in evaluation], list(it["s_d"]), tag="eval")
        preds = [r.parsed["label"] if r.ok else None for r in res]
        for r in labeller_report(preds, truth, lengths):
            report.append({"variant": f"iteration-{it['iteration']}", **r})
            if r["subset"] == "all":
                points.append((it["iteration"], r["accuracy"], r["length_accuracy"]))
    rows = [AgreementRow(evaluator="path_b", eval_set=eval_set, model=rt.model_id,
                         **{k: v for k, v in r.items() if k in AgreementRow.model_fields}) for r in report]
    png = _learning_curve_png(points)
    path = warehouse.write_export("judge_learning_curve.png", png)
    return warehouse.record(context, rows, main_table="agreement_metrics", metadata={
        "items": len(evaluation), "agreement": dg.MetadataValue.md(report_markdown(report)),
        "learning_curve": dg.MetadataValue.md(f"![learning curve](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "learning_curve_png": dg.MetadataValue.path(str(path)), **rt.stats.as_metadata()})
