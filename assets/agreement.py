"""How well the automatic labellers agree with human labels, beside the length baseline."""

import dagster as dg
from pydantic import Field

from agents import judge, labeler, principles
from agents.labeler import ABLATIONS
from assets.ingest import human_labels
from assets.judging import judge_runtime, labelled_splits, path_a_items, threshold_for
from assets.metadata import records_table
from assets.path_a import exemplar_index
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from training.metrics import labeller_report, report_markdown
from warehouse.ids import content_id
from warehouse.schema import AgreementRow

GROUP = "evaluation"
AGREEMENT_COLUMNS = ("variant", "subset", "n", "auc", "accuracy", "kappa", "positive_rate", "length_auc",
                     "length_accuracy", "parse_failures")


class AgreementConfig(dg.Config):
    sample_size: int = Field(default=16, description="evaluation-split items to evaluate (0 = all; fewer keep "
                             "both labels)")
    seed: int = Field(default=0, description="the label split (must match judge_calibration's)")
    source: str | None = Field(default=None, description="only labels from this source (e.g. igniting-eval-dev)")
    ablations: bool = Field(default=True, description="also run without Positive / Negative / retrieval / reflect")
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")
    k_search: int = 8
    k_final: int = 3


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, deps=[human_labels, exemplar_index, dg.AssetKey("judge_calibration")],
          kinds={"duckdb"}, code_version="2",
          description="Path A's multi-agent labeller on the evaluation split of the human labels (never used to "
          "train or calibrate): AUC of its scores, and accuracy, F1, kappa and positive rate at the calibrated "
          "thresholds, for the judge and reflect stages and ablations, on all items and the 30–49-char band, "
          "beside the length baseline.")
def labeler_agreement(context: dg.AssetExecutionContext, config: AgreementConfig, warehouse: WarehouseResource,
                      llm: LLMResource, embedder: EmbedderResource, vectors: VectorStoreResource) -> dg.MaterializeResult:
    _, _, evaluation = labelled_splits(warehouse, config.source, config.seed)
    sample = principles.balanced_head(evaluation, config.sample_size)
    if not sample:
        raise dg.Failure("no evaluation-split human labels: materialize human_labels")
    items = path_a_items(warehouse, embedder, vectors, sample, config.k_search, config.k_final)
    truth = [e.label for e in sample]
    lengths = [len(e.response) for e in sample]
    eval_set = content_id(sorted(e.item_id for e in sample))
    agents_rt = llm.runtime(context)
    judge_rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    tj, _ = threshold_for(context, warehouse, "path_a/judge", judge_rt.model_id, judge.PROMPT_VERSION)
    tr, _ = threshold_for(context, warehouse, "path_a/reflect", judge_rt.model_id, judge.REFLECT_VERSION)
    pos, neg = labeler.debate_points(agents_rt, items)
    variants: dict[str, tuple[list[float | None], float]] = {}
    for ablation in ABLATIONS if config.ablations else ABLATIONS[:1]:
        if ablation.name == "no_reflect":
            continue  # identical to the full run's judge stage
        scores = labeler.score(judge_rt, items, pos, neg, ablation)
        if ablation.name == "full":
            variants["judge (= no_reflect)"] = ([s.judge for s in scores], tj)
            variants["reflect"] = ([s.final for s in scores], tr)
            variants["audit only"] = ([s.audit for s in scores], tj)
        else:
            variants[ablation.name] = ([s.final for s in scores], tr)
    report = []
    for variant, (ps, t) in variants.items():
        preds = [None if p is None else int(p >= t) for p in ps]
        for r in labeller_report(preds, truth, lengths, scores=ps):
            report.append({"variant": variant, **r})
    rows = [AgreementRow(evaluator="path_a", eval_set=eval_set, model=judge_rt.model_id,
                         **{k: v for k, v in r.items() if k in AgreementRow.model_fields})
            for r in report]
    reflect_all = next(r for r in report if r["variant"] == "reflect" and r["subset"] == "all")
    return warehouse.record(context, rows, main_table="agreement_metrics", metadata={
        "items": len(items), "judge_model": judge_rt.model_id,
        "human_positive_rate": sum(truth) / len(truth),
        "reflect_kappa": reflect_all["kappa"] if reflect_all["kappa"] is not None else -1.0,
        "reflect_auc": reflect_all["auc"] if reflect_all["auc"] is not None else -1.0,
        "reflect_positive_rate": reflect_all["positive_rate"] if reflect_all["positive_rate"] is not None else -1.0,
        "agreement": dg.MetadataValue.md(report_markdown(report)),
        "agreement_table": records_table(report, AGREEMENT_COLUMNS),
        **agents_rt.stats.as_metadata()})
