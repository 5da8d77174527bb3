"""How well the automatic labellers agree with human labels, beside the length baseline."""

import dagster as dg
from pydantic import Field

from agents import retrieval
from agents.common import Item
from agents.labeler import ABLATIONS, label
from assets.ingest import human_labels
from assets.path_a import EXEMPLAR_TABLE, current_index_version, exemplar_index
from resources import EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from training.metrics import labeller_report, report_markdown
from warehouse.ids import content_id
from warehouse.schema import AgreementRow

GROUP = "evaluation"


class AgreementConfig(dg.Config):
    sample_size: int = Field(default=16, description="human-labelled items to evaluate (0 = all)")
    seed: int = Field(default=0, description="which items: a hash order of their ids under this seed")
    source: str | None = Field(default=None, description="only labels from this source (e.g. igniting-eval-dev)")
    ablations: bool = Field(default=True, description="also run without Positive / Negative / retrieval")
    k_search: int = 8
    k_final: int = 3


def sample_labels(warehouse: WarehouseResource, config: AgreementConfig):
    df = warehouse.get().sql(
        "SELECT id, prompt, response, label FROM human_labels_latest WHERE ? IS NULL OR source = ?",
        [config.source, config.source])
    rows = sorted(df.iter_rows(named=True), key=lambda r: content_id(config.seed, r["id"]))
    return rows[: config.sample_size] if config.sample_size else rows


@dg.asset(group_name=GROUP, deps=[human_labels, exemplar_index], kinds={"duckdb"}, code_version="1",
          description="Path A's multi-agent labeller on the human-labelled set: accuracy, precision, recall, F1, "
          "kappa and Spearman for the judge and reflect stages and ablations, on all items and the 30–49-char "
          "band, beside the length baseline.")
def labeler_agreement(context: dg.AssetExecutionContext, config: AgreementConfig, warehouse: WarehouseResource,
                      llm: LLMResource, embedder: EmbedderResource, vectors: VectorStoreResource) -> dg.MaterializeResult:
    sample = sample_labels(warehouse, config)
    found = retrieval.retrieve(embedder.get(), vectors.get(), EXEMPLAR_TABLE, [r["prompt"] for r in sample],
                               k_search=config.k_search, k_final=config.k_final,
                               version=current_index_version(warehouse),
                               exclude=[{r["response"]} for r in sample])  # never show the answer as an exemplar
    items = [Item(item_id=r["id"], prompt=r["prompt"], response=r["response"], exemplars=tuple(f.texts))
             for r, f in zip(sample, found, strict=True)]
    truth = [int(r["label"]) for r in sample]
    lengths = [len(r["response"]) for r in sample]
    eval_set = content_id(sorted(r["id"] for r in sample))
    rt = llm.runtime(context)
    preds: dict[str, list[int | None]] = {}
    for ablation in ABLATIONS if config.ablations else ABLATIONS[:1]:
        if ablation.name == "no_reflect":
            continue  # identical to the full run's judge stage
        outcomes = label(rt, items, ablation)
        if ablation.name == "full":
            preds["judge (= no_reflect)"] = [o.judge_label for o in outcomes]
            preds["reflect"] = [o.final_label for o in outcomes]
        else:
            preds[ablation.name] = [o.final_label for o in outcomes]
    report = []
    for variant, p in preds.items():
        for r in labeller_report(p, truth, lengths):
            report.append({"variant": variant, **r})
    rows = [AgreementRow(evaluator="path_a", eval_set=eval_set, model=rt.model_id,
                         **{k: v for k, v in r.items() if k in AgreementRow.model_fields})
            for r in report]
    return warehouse.record(context, rows, main_table="agreement_metrics", metadata={
        "items": len(items), "human_positive_rate": sum(truth) / len(truth) if truth else -1.0,
        "agreement": dg.MetadataValue.md(report_markdown(report)), **rt.stats.as_metadata()})
