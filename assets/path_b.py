"""Path B: the adversarially optimized, principle-guided LLM judge.

judge_principles (the Generator / Detector / Reflector / Optimizer loop, every iteration an
event) → judge_scores (the judge with the best S_D scores candidates) and judge_agreement
(every iteration's S_D against human labels, with a learning curve).
"""

import json

import dagster as dg
from pydantic import Field

from agents import judging, principles
from agents.principles import Iteration, LoopConfig
from assets.ingest import human_labels
from assets.judging import (
    JudgeModelConfig,
    judge_model,
    judge_runtime,
    labelled_splits,
    threshold_for,
    train_judge,
)
from assets.partitions import prompt_batches
from assets.path_a import _items, candidates
from assets.plots import line_plot, markdown_image
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import LLMResource, TrainingResource, WarehouseResource
from training.metrics import labeller_report, report_markdown
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import AdversarialExampleRow, AgreementRow, JudgePrincipleRow, JudgeScoreRow

GROUP = "path_b"


class PrinciplesConfig(dg.Config):
    iterations: int = Field(default=3, description="adversarial iterations after the initial strategies")
    generated_per_iteration: int = Field(default=4, description="flawed greetings the Generator writes per iteration")
    real_per_iteration: int = Field(default=6, description="real labelled examples the Detector judges per iteration")
    heldout_size: int = Field(default=8, description="held-out labelled items that pick the best S_D (0 = all)")
    calibration_size: int = Field(default=0, description="training-split items that calibrate the threshold (0 = all)")
    patience: int = Field(default=2, description="early stop after this many iterations without improvement")
    source: str | None = Field(default=None, description="only human labels from this source")
    use_judge_model: bool = Field(default=True, description="the Detector is the newest trained judge (local backends)")
    retrain_judge: bool = Field(default=True, description="adversarial training: after an iteration whose planted "
                                "greetings fooled the Detector, train the next judge with them as negatives")
    judge: JudgeModelConfig = Field(default_factory=JudgeModelConfig, description="training of the retrained judges")
    seed: int = 0


def _row(loop: str, it: Iteration) -> JudgePrincipleRow:
    return JudgePrincipleRow(loop_id=loop, iteration=it.iteration, s_g=it.s_g, s_d=it.s_d, suggestions=it.suggestions,
                             heldout_accuracy=it.heldout_accuracy, detector_errors=it.detector_errors,
                             model=it.judge_model or "", prompt_version=principles.PROMPT_VERSION,
                             heldout_auc=it.heldout_auc, threshold=it.threshold, judge_model=it.judge_model)


def _adversarial_rows(loop: str, it: Iteration) -> list[AdversarialExampleRow]:
    return [AdversarialExampleRow(loop_id=loop, iteration=it.iteration, prompt=a["prompt"], greeting=a["greeting"],
                                  flaws=a["flaws"], detector_model=it.judge_model or "", score=a["score"],
                                  threshold=a["threshold"], fooled=a["fooled"]) for a in it.adversarial]


def recorded_iterations(warehouse: WarehouseResource, loop: str) -> list[Iteration]:
    df = warehouse.get().sql(
        "SELECT iteration, s_g, s_d, suggestions, heldout_accuracy, detector_errors, heldout_auc, threshold, "
        "judge_model FROM judge_principles_latest WHERE loop_id = ? ORDER BY iteration", [loop])
    return [Iteration(r["iteration"], list(r["s_g"]), list(r["s_d"]), json.loads(r["suggestions"]),
                      r["heldout_accuracy"], r["detector_errors"], r["heldout_auc"], r["threshold"], r["judge_model"])
            for r in df.iter_rows(named=True)]


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, deps=[human_labels, judge_model], kinds={"duckdb"},
          code_version=f"2-{principles.PROMPT_VERSION}",
          description="The adversarial loop: S_G and S_D per iteration with the suggestions used, the Detector's "
          "threshold (calibrated on the training split) and held-out AUC / accuracy. The Detector is the trained "
          "judge; planted greetings that fooled it are recorded in adversarial_examples and train the next judge "
          "(retrain_judge). Its value is the S_D with the best held-out AUC. A crashed run resumes from the "
          "recorded iterations.")
def judge_principles(context: dg.AssetExecutionContext, config: PrinciplesConfig, warehouse: WarehouseResource,
                     llm: LLMResource, training: TrainingResource,
                     pipes_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    train, heldout, _ = labelled_splits(warehouse, config.source, config.seed)
    heldout = principles.balanced_head(heldout, config.heldout_size)
    train = principles.balanced_head(train, config.calibration_size)
    if not train or not heldout:
        raise dg.Failure("judge_principles needs human labels (materialize human_labels)")
    loop_cfg = LoopConfig(iterations=config.iterations, generated_per_iteration=config.generated_per_iteration,
                          real_per_iteration=config.real_per_iteration, patience=config.patience, seed=config.seed)
    rt = llm.runtime(context)
    judge_rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    loop = principles.loop_id(f"{rt.model_id}|{judge_rt.model_id}", train, heldout, loop_cfg)
    done = recorded_iterations(warehouse, loop)
    if done:
        context.log.info(f"loop {loop}: resuming after iteration {done[-1].iteration}")
        if done[-1].judge_model and done[-1].judge_model != judge_rt.model_id:
            judge_rt = llm.runtime(context, model=done[-1].judge_model)
    wh = warehouse.get()
    retrained: list[str] = []

    def checkpoint(it: Iteration):  # each iteration is its own event, committed at once
        wh.append([_row(loop, it), *_adversarial_rows(loop, it)], run_id=context.run_id,
                  asset_key="judge_principles/checkpoint")
        fooled = sum(1 for a in it.adversarial if a["fooled"])
        context.log.info(f"iteration {it.iteration}: held-out AUC {it.heldout_auc}, accuracy {it.heldout_accuracy} "
                         f"at threshold {it.threshold}, {it.detector_errors} detector errors, {fooled} of "
                         f"{len(it.adversarial)} planted greetings fooled the judge")
        if not (config.retrain_judge and fooled and it.iteration < config.iterations and judge_rt.model_id):
            return None
        current = latest_model(wh, "judge")
        if current is None or llm.backend == "openai":
            return None  # nothing trained to continue from, or an endpoint judges
        train_judge(context, warehouse, training, pipes_client, config.judge, base_id=current["model_id"],
                    base_path=current["artifact_path"], lineage={"round": it.iteration + 1, "loop_id": loop},
                    principles_id=None, s_d=it.s_d)
        new = latest_model(wh, "judge")
        if new is None or new["model_id"] == current["model_id"]:
            return None
        retrained.append(new["model_id"])
        return llm.runtime(context, model=new["model_id"])

    history = principles.run_loop(rt, train, heldout, loop_cfg, done=done, on_iteration=checkpoint, judge=judge_rt)
    chosen = principles.best(history)
    rows = [_row(loop, it) for it in history]
    curve = "\n".join(f"| {h.iteration} | {h.heldout_auc} | {h.heldout_accuracy} | {h.threshold} | "
                      f"{h.detector_errors} | {sum(1 for a in h.adversarial if a['fooled'])}/{len(h.adversarial)} | "
                      f"{len(h.s_d)} | {h.judge_model} |" for h in history)
    result = warehouse.record(context, rows, main_table="judge_principles", metadata={
        "loop_id": loop, "best_iteration": chosen.iteration,
        "best_heldout_auc": chosen.heldout_auc if chosen.heldout_auc is not None else -1.0,
        "best_heldout_accuracy": chosen.heldout_accuracy if chosen.heldout_accuracy is not None else -1.0,
        "best_principles_id": rows[chosen.iteration].event_id(),
        "best_s_d": dg.MetadataValue.md("\n".join(f"{i + 1}. {r}" for i, r in enumerate(chosen.s_d))),
        "iterations": dg.MetadataValue.md("| iteration | held-out AUC | held-out acc | threshold | detector errors | "
                                          "fooled | #S_D | judge |\n|---|---|---|---|---|---|---|---|\n" + curve),
        "retrained_judges": dg.MetadataValue.json(retrained),
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
            ORDER BY coalesce(heldout_auc, -1) DESC, coalesce(heldout_accuracy, 0) DESC, iteration LIMIT 1""")
    if not df.height:
        raise dg.Failure(f"no judge principles {'with id ' + principles_id if principles_id else 'yet'}: "
                         "materialize judge_principles first")
    return df["id"][0], list(df["s_d"][0])


class JudgeScoresConfig(dg.Config):
    principles_id: str | None = Field(default=None, description="judge_principles event id (default: best of newest loop)")
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, partitions_def=prompt_batches, deps=[candidates, judge_principles,
                                                                 dg.AssetKey("judge_calibration")],
          kinds={"duckdb"}, code_version=f"2-{principles.PROMPT_VERSION}",
          description="The principle-guided judge per candidate: P(是) under the chosen S_D, and the label at the "
          "calibrated threshold, stored with the S_D, the judge model and the calibration used.")
def judge_scores(context: dg.AssetExecutionContext, config: JudgeScoresConfig, warehouse: WarehouseResource,
                 llm: LLMResource) -> dg.MaterializeResult:
    pid, s_d = chosen_principles(warehouse, config.principles_id)
    items, _ = _items(warehouse, context.partition_key)
    rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    threshold, cal_id = threshold_for(context, warehouse, "path_b/judge", rt.model_id, principles.PROMPT_VERSION, pid)
    results = principles.detect(rt, [(it.prompt, it.response) for it in items], s_d, tag="score")
    rows = []
    for it, r in zip(items, results, strict=True):
        p = judging.probability(r)
        rows.append(JudgeScoreRow(candidate_id=it.item_id, principles_id=pid,
                                  label=None if p is None else int(p >= threshold), score=p,
                                  reason=f"P(是)={p:.3f}，阈值 {threshold:.3f}" if p is not None
                                  else f"[{r.status}] {r.error}", llm_call_id=r.request_key, threshold=threshold,
                                  calibration_id=cal_id, judge_model=rt.model_id))
    labels = [r.label for r in rows if r.label is not None]
    scores = [r.score for r in rows if r.score is not None]
    return warehouse.record(context, rows, main_table="judge_scores", metadata={
        "principles_id": pid, "judge_model": rt.model_id, "threshold": threshold,
        "excellence_rate": sum(labels) / len(labels) if labels else -1.0,
        "score_mean": sum(scores) / len(scores) if scores else -1.0,
        "score_spread": max(scores) - min(scores) if scores else -1.0,
        "failures": len(rows) - len(labels), **rt.stats.as_metadata()})


class JudgeAgreementConfig(dg.Config):
    sample_size: int = Field(default=8, description="evaluation-split items (0 = all)")
    source: str | None = None
    seed: int = Field(default=0, description="must match judge_principles' seed (same split)")


def _learning_curve_png(points: list[tuple[int, float | None, float | None]]) -> bytes:
    its = [p[0] for p in points]
    return line_plot({"judge AUC": (its, [p[1] for p in points]),
                      "length baseline AUC": (its, [p[2] for p in points])},
                     xlabel="iteration", ylabel="AUC vs human labels", ylim=(0, 1), dashed=["length baseline AUC"])


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name="evaluation", deps=[judge_principles], kinds={"duckdb"}, code_version="2",
          description="Every iteration's S_D, read by the judge that scored that iteration, on the evaluation split: "
          "AUC of P(是), and accuracy / F1 / kappa at the iteration's calibrated threshold, on all items and the "
          "30–49-char band, beside the length baseline, with a learning curve.")
def judge_agreement(context: dg.AssetExecutionContext, config: JudgeAgreementConfig, warehouse: WarehouseResource,
                    llm: LLMResource) -> dg.MaterializeResult:
    _, _, evaluation = labelled_splits(warehouse, config.source, config.seed)
    evaluation = principles.balanced_head(evaluation, config.sample_size)
    wh = warehouse.get()
    loop = wh.sql("SELECT loop_id FROM judge_principles ORDER BY created_at DESC LIMIT 1")
    if not loop.height:
        raise dg.Failure("materialize judge_principles first")
    its = wh.sql("SELECT iteration, s_d, threshold, judge_model FROM judge_principles_latest WHERE loop_id = ? "
                 "ORDER BY iteration", [loop["loop_id"][0]])
    truth = [e.label for e in evaluation]
    lengths = [len(e.response) for e in evaluation]
    eval_set = content_id(sorted(e.item_id for e in evaluation))
    report, points, models = [], [], []
    for it in its.iter_rows(named=True):
        rt = llm.runtime(context, model=it["judge_model"] or None)
        models.append(rt.model_id)
        ps = principles.probabilities(principles.detect(rt, [(e.prompt, e.response) for e in evaluation],
                                                         list(it["s_d"]), tag="eval"))
        t = it["threshold"] if it["threshold"] is not None else judging.DEFAULT_THRESHOLD
        preds = [None if p is None else int(p >= t) for p in ps]
        for r in labeller_report(preds, truth, lengths, scores=ps):
            report.append({"variant": f"iteration-{it['iteration']}", **r})
            if r["subset"] == "all":
                points.append((it["iteration"], r["auc"], r["length_auc"]))
    rows = [AgreementRow(evaluator="path_b", eval_set=eval_set, model=m,
                         **{k: v for k, v in r.items() if k in AgreementRow.model_fields})
            for r, m in zip(report, [m for m in models for _ in range(2)], strict=True)]
    png = _learning_curve_png(points)
    path = warehouse.write_export("judge_learning_curve.png", png)
    return warehouse.record(context, rows, main_table="agreement_metrics", metadata={
        "items": len(evaluation), "agreement": dg.MetadataValue.md(report_markdown(report)),
        "learning_curve": dg.MetadataValue.md(markdown_image(png, "learning curve")),
        "learning_curve_png": dg.MetadataValue.path(str(path))})
