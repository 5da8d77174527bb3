"""Path A: multi-agent rejection sampling.

prompts → candidates (the policy, k per prompt) → retrievals (exemplars) → debate_arguments
(Positive / Negative) → verdicts (Judge, then Reflect) → preference_pairs → a TRL JSONL export.
Every stage is partitioned by prompt batch; every model call goes through the LLM runtime, so a
re-materialization with unchanged inputs makes no model calls.
"""

import json
from collections import Counter

import dagster as dg
import polars as pl
from pydantic import Field

from agents import debate, judge, labeler, policy, retrieval
from agents.common import Item
from agents.pairs import Labelled, PairingPolicy, make_pairs
from assets.ingest import prompts, seed_preference_pairs, seed_sft_examples
from assets.judging import judge_runtime, threshold_for
from assets.partitions import prompt_batches
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from resources.warehouse import markdown_preview
from warehouse.exports import export_preference_pairs_trl
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import (
    CandidateRow,
    DebateArgumentRow,
    PreferencePairRow,
    RetrievalRow,
    VectorIndexRow,
    VerdictRow,
)

GROUP = "path_a"
EXEMPLAR_TABLE = "exemplars"


# ---------------------------------------------------------------- candidates


class CandidatesConfig(dg.Config):
    k: int = Field(default=4, description="candidates per prompt")
    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 96
    seed: int = 0
    policy_model: str | None = Field(default=None, description="default: the newest SFT model (see use_sft), else "
                                     "the llm resource's model")
    use_sft: bool = Field(default=True, description="write with the newest registered SFT model when there is one")
    max_prompts: int = Field(default=0, description="only the first N prompts of the batch (0 = all)")


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, partitions_def=prompt_batches, deps=[prompts, dg.AssetKey("sft_model")], kinds={"duckdb"},
          code_version=f"2-{policy.PROMPT_VERSION}",
          description="k greetings per prompt from the policy model (temperature and seed recorded): the newest SFT "
          "model when there is one, as DESIGN.md asks of the embedded default. The batch's prompts come from "
          "`batch_prompts`, so a prompt first recorded under another batch gets candidates here too; a candidate "
          "identical to a stored one (same prompt, policy, seed and sample) is not stored twice.")
def candidates(context: dg.AssetExecutionContext, config: CandidatesConfig, warehouse: WarehouseResource,
               llm: LLMResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    # every prompt the batch contains, also those first recorded under another batch (batch_prompts)
    ps = wh.sql("SELECT prompt_id AS id, text FROM batch_prompts WHERE batch = ? ORDER BY prompt_id",
                [context.partition_key])
    if config.max_prompts:
        ps = ps.head(config.max_prompts)
    model = config.policy_model
    if model is None and config.use_sft and llm.backend != "openai" and (sft := latest_model(wh, "sft")):
        model = sft["model_id"]  # a model-store name: the local backend loads it from there
    rt = llm.runtime(context, model=model)
    reqs = [r for row in ps.iter_rows(named=True)
            for r in policy.candidate_requests(row["id"], row["text"], k=config.k, temperature=config.temperature,
                                               top_p=config.top_p, max_new_tokens=config.max_new_tokens,
                                               seed=config.seed)]
    results = rt.chat(reqs)
    rows, empty = [], 0
    for req, res in zip(reqs, results, strict=True):
        text = (res.text or "").strip()
        if not res.ok or not text:
            empty += 1
            continue
        prompt_id, index = req.item.split("#")
        rows.append(CandidateRow(prompt_id=prompt_id, text=text, policy_model=rt.model_id,
                                 prompt_version=policy.PROMPT_VERSION, sample_index=int(index),
                                 temperature=req.sampling.temperature, seed=config.seed + int(index),
                                 llm_call_id=res.request_key))
    lengths = [len(r.text) for r in rows]
    return warehouse.record(context, rows, main_table="candidates", metadata={
        "prompts": ps.height, "failed_or_empty": empty, "policy_model": rt.model_id,
        "mean_chars": round(sum(lengths) / len(lengths), 1) if lengths else 0.0, **rt.stats.as_metadata()})


# ---------------------------------------------------------------- retrieval


@dg.asset(group_name=GROUP, deps=[seed_sft_examples, seed_preference_pairs], kinds={"lancedb"}, code_version="1",
          description="LanceDB table of high-quality exemplars (SFT outputs, chosen responses) with a popularity "
          "column: how often the exemplar's request recurs in the seed data.")
def exemplar_index(context: dg.AssetExecutionContext, warehouse: WarehouseResource, embedder: EmbedderResource,
                   vectors: VectorStoreResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    df = wh.sql("""
        WITH ex AS (SELECT prompt, response AS text FROM seed_sft_examples_latest
                    UNION ALL SELECT prompt, chosen AS text FROM seed_preference_pairs_latest),
             pop AS (SELECT prompt, count(*) AS n FROM ex GROUP BY prompt)
        SELECT text, min(prompt) AS prompt, max(pop.n) AS popularity
        FROM ex JOIN pop USING (prompt) GROUP BY text ORDER BY text""")
    rows = [{"id": content_id("exemplar", r["text"]), **r} for r in df.iter_rows(named=True)]
    emb = embedder.get()
    store = vectors.get()
    last = wh.sql("SELECT lance_version, embedder FROM vector_indexes_latest WHERE index_name = ?", [EXEMPLAR_TABLE])
    current = store.rows(EXEMPLAR_TABLE, ["id", "text", "prompt", "popularity"])
    unchanged = (last.height and last["embedder"][0] == emb.model_id and current is not None
                 and store.version(EXEMPLAR_TABLE) == last["lance_version"][0]
                 and sorted(current, key=lambda r: r["id"]) == sorted(rows, key=lambda r: r["id"]))
    if unchanged:  # same exemplars, same embedder: keep the version, so retrievals stay the same events
        version = int(last["lance_version"][0])
        context.log.info(f"exemplars unchanged: keeping LanceDB version {version}")
    else:
        vecs = emb.passages([f"{r['prompt']}\n{r['text']}" for r in rows])
        version = store.write(EXEMPLAR_TABLE, rows, vecs)
    event = VectorIndexRow(index_name=EXEMPLAR_TABLE, lance_version=version, uri=store.uri,
                           embedder=emb.model_id, rows=len(rows))
    return warehouse.record(context, [event], main_table="vector_indexes", metadata={
        "exemplars": len(rows), "lance_version": version, "embedder": emb.model_id,
        "top_popularity": dg.MetadataValue.md(markdown_preview([]) if not rows else
                                              "\n".join(f"- {r['popularity']}× {r['prompt'][:40]}" for r in
                                                        sorted(rows, key=lambda r: -r["popularity"])[:5]))})


class RetrievalConfig(dg.Config):
    k_search: int = Field(default=8, description="nearest exemplars searched")
    k_final: int = Field(default=3, description="kept after re-ranking by popularity")


def current_index_version(warehouse: WarehouseResource) -> int | None:
    df = warehouse.get().sql("SELECT lance_version FROM vector_indexes_latest WHERE index_name = ?", [EXEMPLAR_TABLE])
    return int(df["lance_version"][0]) if df.height else None


@dg.asset(group_name=GROUP, partitions_def=prompt_batches, deps=[prompts, exemplar_index], kinds={"duckdb"},
          code_version="2", description="Per prompt: the exemplars the Retrieval agent found (ids, texts, scores). "
          "The batch's prompts come from `batch_prompts`, as in candidates, so a prompt first recorded under "
          "another batch gets retrievals at the current index version here too.")
def retrievals(context: dg.AssetExecutionContext, config: RetrievalConfig, warehouse: WarehouseResource,
               embedder: EmbedderResource, vectors: VectorStoreResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    # every prompt the batch contains, also those first recorded under another batch (batch_prompts)
    ps = wh.sql("SELECT prompt_id AS id, text FROM batch_prompts WHERE batch = ? ORDER BY prompt_id",
                [context.partition_key])
    version = current_index_version(warehouse)
    if version is None:
        raise dg.Failure("no exemplar index: materialize exemplar_index first")
    found = retrieval.retrieve(embedder.get(), vectors.get(), EXEMPLAR_TABLE, ps["text"].to_list(),
                               k_search=config.k_search, k_final=config.k_final, version=version)
    rows = [RetrievalRow(prompt_id=pid, exemplar_ids=r.exemplar_ids, exemplar_texts=r.texts, scores=r.scores,
                         k_search=config.k_search, k_final=config.k_final, index_version=str(version))
            for pid, r in zip(ps["id"].to_list(), found, strict=True)]
    return warehouse.record(context, rows, main_table="retrievals", metadata={"lance_version": version})


# ---------------------------------------------------------------- debate and verdicts


def _items(warehouse: WarehouseResource, batch: str) -> tuple[list[Item], pl.DataFrame]:
    """Candidates of a batch as agent items, with their prompt and retrieved exemplars."""
    df = warehouse.get().sql("""
        SELECT c.id, c.prompt_id, p.text AS prompt, c.text, coalesce(r.exemplar_texts, []) AS exemplars
        FROM candidates_latest c JOIN prompts p ON p.id = c.prompt_id
        LEFT JOIN (SELECT * FROM retrievals_latest WHERE index_version = ?) r ON r.prompt_id = c.prompt_id
        WHERE c.partition_key = ? ORDER BY c.id""", [str(current_index_version(warehouse)), batch])
    items = [Item(item_id=r["id"], prompt=r["prompt"], response=r["text"], exemplars=tuple(r["exemplars"]))
             for r in df.iter_rows(named=True)]
    return items, df


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, partitions_def=prompt_batches, deps=[candidates, retrievals], kinds={"duckdb"},
          code_version=f"1-{debate.PROMPT_VERSION}",
          description="Positive and Negative agents' arguments per candidate: [{dimension, point, evidence}].")
def debate_arguments(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     llm: LLMResource) -> dg.MaterializeResult:
    items, _ = _items(warehouse, context.partition_key)
    rt = llm.runtime(context)
    rows = []
    both = debate.argue_both(rt, items)  # one batch for both sides
    for side, results in zip(("positive", "negative"), both, strict=True):
        for it, res in zip(items, results, strict=True):
            rows.append(DebateArgumentRow(
                candidate_id=it.item_id, side=side, points=res.parsed["points"] if res.ok else [],
                status=res.status, error=res.error, agent_version=debate.PROMPT_VERSION, llm_call_id=res.request_key))
    return warehouse.record(context, rows, main_table="debate_arguments", metadata={
        "candidates": len(items), **rt.stats.as_metadata()})


class VerdictsConfig(dg.Config):
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")
    max_parse_failure_rate: float = Field(default=0.2, description="blocking check threshold")
    min_positive_rate: float = Field(default=0.0, description="label balance: lowest acceptable share of 1s")
    max_positive_rate: float = Field(default=1.0, description="label balance: highest acceptable share of 1s")


VERDICT_CHECKS = [
    dg.AssetCheckSpec("every_candidate_judged", asset="verdicts",
                      description="every candidate has both debate sides and a final (reflect) verdict"),
    dg.AssetCheckSpec("parse_failure_rate", asset="verdicts", blocking=True,
                      description="share of judge/reflect outputs that failed to parse, under the threshold"),
    dg.AssetCheckSpec("label_balance", asset="verdicts", description="share of final 1s within configured bounds"),
]


def _points_by(df: pl.DataFrame, side: str) -> dict[str, list[dict] | None]:
    sub = df.filter(pl.col("side") == side)
    return {cid: json.loads(pts) if status == "ok" else None
            for cid, pts, status in zip(sub["candidate_id"], sub["points"], sub["status"], strict=True)}


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, partitions_def=prompt_batches, deps=[debate_arguments, dg.AssetKey("judge_calibration")],
          kinds={"duckdb"}, code_version=f"2-{judge.PROMPT_VERSION}-{judge.REFLECT_VERSION}",
          check_specs=VERDICT_CHECKS,
          description="Judge (P(是) with the debate and exemplars as reference) and Reflect (the audit without the "
          "debate, finalising the mean of both readings) per candidate; labels at thresholds calibrated on human "
          "labels (judge_calibration), stored beside the scores.")
def verdicts(context: dg.AssetExecutionContext, config: VerdictsConfig, warehouse: WarehouseResource,
             llm: LLMResource) -> dg.MaterializeResult:
    items, _ = _items(warehouse, context.partition_key)
    args = warehouse.get().sql(
        "SELECT candidate_id, side, points, status FROM debate_arguments_latest WHERE agent_version = ?",
        [debate.PROMPT_VERSION])
    pos_by, neg_by = _points_by(args, "positive"), _points_by(args, "negative")
    pos = [pos_by.get(it.item_id) for it in items]
    neg = [neg_by.get(it.item_id) for it in items]
    rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    tj, cal_j = threshold_for(context, warehouse, "path_a/judge", rt.model_id, judge.PROMPT_VERSION)
    tr, cal_r = threshold_for(context, warehouse, "path_a/reflect", rt.model_id, judge.REFLECT_VERSION)
    scored = labeler.score(rt, items, pos, neg)
    rows = []
    for it, sc in zip(items, scored, strict=True):
        jl = None if sc.judge is None else int(sc.judge >= tj)
        fl = None if sc.final is None else int(sc.final >= tr)
        rows.append(VerdictRow(candidate_id=it.item_id, stage="judge", label=jl, score=sc.judge, threshold=tj,
                               calibration_id=cal_j, agent_version=judge.PROMPT_VERSION,
                               reason=_reason(sc.judge, tj, sc.judge_result), llm_call_id=sc.judge_result.request_key))
        audit = sc.audit_result
        rows.append(VerdictRow(candidate_id=it.item_id, stage="reflect", label=fl, score=sc.final, threshold=tr,
                               calibration_id=cal_r, changed=(fl != jl) if fl is not None and jl is not None else None,
                               agent_version=judge.REFLECT_VERSION,
                               reason=_reason(sc.final, tr, audit) + (f"（复核单看 P(是)={sc.audit:.3f}）"
                                                                      if sc.audit is not None else ""),
                               llm_call_id=audit.request_key if audit else None))
    n = len(items)
    failures = sum(1 for sc in scored for x in (sc.judge_result, sc.audit_result) if x is not None and not x.ok)
    finals = [row.label for row in rows if row.stage == "reflect" and row.label is not None]
    scores = [row.score for row in rows if row.stage == "reflect" and row.score is not None]
    missing_debate = sum(1 for it in items if it.item_id not in pos_by or it.item_id not in neg_by)
    missing_final = n - len(finals)
    fail_rate = failures / (2 * n) if n else 0.0
    pos_rate = sum(finals) / len(finals) if finals else None
    checks = [
        dg.AssetCheckResult(check_name="every_candidate_judged", passed=missing_debate == 0 and missing_final == 0,
                            metadata={"candidates": n, "without_both_debate_sides": missing_debate,
                                      "without_final_label": missing_final}),
        dg.AssetCheckResult(check_name="parse_failure_rate", passed=fail_rate <= config.max_parse_failure_rate,
                            metadata={"rate": round(fail_rate, 4), "threshold": config.max_parse_failure_rate}),
        dg.AssetCheckResult(check_name="label_balance", severity=dg.AssetCheckSeverity.WARN,
                            passed=pos_rate is not None and config.min_positive_rate <= pos_rate <= config.max_positive_rate,
                            metadata={"positive_rate": pos_rate if pos_rate is not None else -1.0}),
    ]
    changed = sum(1 for row in rows if row.changed)
    result = warehouse.record(context, rows, main_table="verdicts", metadata={
        "candidates": n, "judge_model": rt.model_id, "threshold_judge": tj, "threshold_reflect": tr,
        "calibrated": cal_j is not None and cal_r is not None,
        "final_positive_rate": pos_rate if pos_rate is not None else -1.0,
        "final_score_min": min(scores) if scores else -1.0, "final_score_max": max(scores) if scores else -1.0,
        "reflect_changed": changed, "labels": dg.MetadataValue.json(dict(Counter(str(x) for x in finals))),
        **rt.stats.as_metadata()})
    return dg.MaterializeResult(metadata=result.metadata, data_version=result.data_version, check_results=checks)


def _reason(p: float | None, threshold: float, result) -> str:
    if p is None:
        return f"[{result.status if result else 'missing'}] {result.error if result else ''}"
    return f"P(是)={p:.3f} {'≥' if p >= threshold else '<'} 阈值 {threshold:.3f}"


# ---------------------------------------------------------------- preference pairs


class PairsConfig(dg.Config):
    policy: PairingPolicy = Field(default="best_vs_worst", description="all | best_vs_worst | one_per_prompt")
    seed: int = 0


@dg.asset(group_name=GROUP, partitions_def=prompt_batches, deps=[verdicts], kinds={"duckdb"}, code_version="1",
          check_specs=[dg.AssetCheckSpec("chosen_differs_from_rejected", asset="preference_pairs", blocking=True)],
          description="Rejection sampling: chosen from final-label-1 candidates, rejected from label-0 ones, of the "
          "same prompt and the same policy (recorded in policy_model).")
def preference_pairs(context: dg.AssetExecutionContext, config: PairsConfig,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    df = warehouse.get().sql("""
        SELECT c.id, c.prompt_id, c.text, c.policy_model, v.label, v.id AS verdict_id,
               list(d.id) AS debate_ids, coalesce(any_value(v.score), 0.0) AS score
        FROM candidates_latest c
        JOIN verdicts_latest v ON v.candidate_id = c.id AND v.stage = 'reflect' AND v.label IS NOT NULL
        LEFT JOIN debate_arguments_latest d ON d.candidate_id = c.id AND d.agent_version = ?
        WHERE c.partition_key = ?
        GROUP BY ALL ORDER BY c.id""", [debate.PROMPT_VERSION, context.partition_key])
    labelled = [Labelled(candidate_id=r["id"], prompt_id=r["prompt_id"], text=r["text"], label=int(r["label"]),
                         score=float(r["score"]), evidence_ids=(r["verdict_id"], *[x for x in r["debate_ids"] if x]),
                         policy=r["policy_model"])
                for r in df.iter_rows(named=True)]
    pairs = make_pairs(labelled, config.policy, seed=config.seed)  # type: ignore[arg-type]
    rows = [PreferencePairRow(prompt_id=p.prompt_id, chosen_candidate_id=p.chosen.candidate_id,
                              rejected_candidate_id=p.rejected.candidate_id, chosen=p.chosen.text,
                              rejected=p.rejected.text, pairing_policy=config.policy, policy_model=p.chosen.policy,
                              evidence_ids=[*p.chosen.evidence_ids, *p.rejected.evidence_ids]) for p in pairs]
    same = sum(1 for r in rows if r.chosen.strip() == r.rejected.strip())
    labels = Counter(x.label for x in labelled)
    why = None
    if not rows:
        why = ("no labelled candidates in this batch" if not labelled else
               f"no prompt has both a label-1 and a label-0 candidate (labels: {dict(labels)})")
        context.log.warning(f"no preference pairs: {why}")
    result = warehouse.record(context, rows, main_table="preference_pairs", metadata={
        "labelled_candidates": len(labelled), "prompts_with_pairs": len({r.prompt_id for r in rows}),
        "label_counts": dg.MetadataValue.json({str(k): v for k, v in labels.items()}),
        **({"why_no_pairs": why} if why else {})})
    check = dg.AssetCheckResult(check_name="chosen_differs_from_rejected", passed=same == 0,
                                metadata={"pairs": len(rows), "chosen_equals_rejected": same})
    return dg.MaterializeResult(metadata=result.metadata, data_version=result.data_version, check_results=[check])


@dg.asset(group_name=GROUP, deps=[preference_pairs], kinds={"json"}, code_version="1",
          description="All current preference pairs as TRL conversational JSONL (prompt / chosen / rejected).")
def preference_pairs_file(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    snapshot = wh.current_snapshot()
    path = warehouse.exports_dir() / "preference_pairs.jsonl"
    n = export_preference_pairs_trl(wh, path, as_of=snapshot)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "pairs": n,
                                          "snapshot_id": snapshot},
                                data_version=dg.DataVersion(f"snapshot-{snapshot}"))
