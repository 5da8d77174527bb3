"""Writer-R1 criteria: scenarios, the Grounded-Theory workflow, criteria scores and their agreement.

The workflow loops over scenarios inside one unpartitioned asset rather than partitioning by
scenario: every scenario shares one batched model call per stage (on a CPU a batch of a few costs
about what one answer does), and the asset graph's other partitions are prompt batches, which a
scenario partition would not line up with. ``scenarios`` in the config selects a subset.
"""

import json
from typing import Any

import dagster as dg
from pydantic import Field

from agents import criteria as crit
from agents import grounded_theory as gt
from agents import principles
from agents.scenarios import GREETING, SCENARIOS
from assets.ingest import human_labels, seed_preference_pairs
from assets.judging import EVAL_SOURCES, evaluation_texts, judge_runtime, labelled_splits
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from resources.scenarios import SAMPLE_BATCH, read_scenario_sample
from training.metrics import labeller_report, report_markdown
from warehouse.ids import content_id
from warehouse.schema import (
    AgreementRow,
    AxialGroupRow,
    CriteriaScoreRow,
    CriteriaTotalRow,
    CriterionRow,
    OpenCodeRow,
    PromptMembershipRow,
    SaturationRow,
    VectorIndexRow,
)

GROUP = "criteria"
CONCEPT_TABLE = "gt_concepts_{scenario}"


# ---------------------------------------------------------------- scenarios


@dg.asset(group_name="ingest", code_version="1", kinds={"duckdb", "parquet"},
          description="The built-in sample of the non-greeting scenarios (对联 couplet, 短诗 poem), written by this "
          "project: their prompts (`prompts.scenario`, batch `builtin-scenarios`) and a good and a flawed response "
          "for most of them (`scenario_examples`, label 1/0). Greetings keep their prompts and labels in the usual "
          "tables (scenario `greeting`), so the greeting judges' data is unchanged.")
def scenario_samples(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    sample = read_scenario_sample()
    members = [PromptMembershipRow(prompt_id=p.event_id(), batch=SAMPLE_BATCH, source_ref=p.source_ref)
               for p in sample.prompts]
    by_scenario: dict[str, int] = {}
    for e in sample.examples:
        by_scenario[e.scenario] = by_scenario.get(e.scenario, 0) + 1
    return warehouse.record(context, [*sample.examples, *sample.prompts, *members, *sample.quarantined],
                            main_table="scenario_examples",
                            metadata={"examples_by_scenario": dg.MetadataValue.json(by_scenario),
                                      "prompts": len(sample.prompts), "quarantined": len(sample.quarantined)})


# ---------------------------------------------------------------- contrasted samples and evaluation items


def _coding_prompt(prompt: str, seed: int, share: float = 0.6, *, prompts: list[str]) -> bool:
    """Prompts of a scenario's examples split by a hash: the first ``share`` code, the rest evaluate."""
    order = sorted(prompts, key=lambda p: content_id("criteria-split", seed, p))
    return order.index(prompt) < max(1, round(share * len(order)))


def scenario_split(warehouse: WarehouseResource, scenario: str, seed: int = 0) -> tuple[list[gt.Sample], list[dict]]:
    """(contrasted samples for coding, labelled evaluation items) of one scenario. Greetings: the
    non-evaluation seed preference pairs, and the evaluation split of the human labels. Others: good ×
    flawed responses of the coding prompts, and the labelled responses of the other prompts."""
    wh = warehouse.get()
    if scenario == GREETING:
        banned = evaluation_texts(warehouse, seed)
        pairs = wh.sql("SELECT prompt, chosen, rejected, source FROM seed_preference_pairs_latest "
                       "WHERE NOT list_contains(?, source) ORDER BY id", [list(EVAL_SOURCES)]).to_dicts()
        notes = {(r["prompt"], r["response"]): r["note"] for r in wh.sql(
            "SELECT prompt, response, note FROM human_labels_latest WHERE note IS NOT NULL").to_dicts()}
        samples = [gt.Sample(p["prompt"], p["chosen"], p["rejected"], p["source"], notes.get((p["prompt"], p["chosen"])))
                   for p in pairs if p["chosen"] not in banned and p["rejected"] not in banned]
        _, _, evaluation = labelled_splits(warehouse, None, seed)
        items = [{"prompt": e.prompt, "response": e.response, "label": e.label, "source": "human_labels"}
                 for e in evaluation]
        return samples, items
    rows = wh.sql("SELECT prompt, response, label, note FROM scenario_examples_latest WHERE scenario = ? ORDER BY id",
                  [scenario]).to_dicts()
    prompts = sorted({r["prompt"] for r in rows})
    coding = {p for p in prompts if _coding_prompt(p, seed, prompts=prompts)}
    samples = [gt.Sample(p, g["response"], b["response"], "scenario_examples", g["note"]) for p in sorted(coding)
               for g in rows if g["prompt"] == p and g["label"] == 1 for b in rows if b["prompt"] == p and b["label"] == 0]
    items = [{"prompt": r["prompt"], "response": r["response"], "label": r["label"], "source": "scenario_examples"}
             for r in rows if r["prompt"] not in coding]
    return samples, items


def current_criteria(warehouse: WarehouseResource, scenario: str) -> list[dict[str, Any]]:
    """The scenario's current criteria set (``criteria_latest`` rows that are active), heaviest first."""
    return warehouse.get().sql(
        "SELECT * FROM criteria_latest WHERE task_type = ? AND coalesce(active, true) ORDER BY weight DESC, id",
        [scenario]).to_dicts()


def scenarios_with_criteria(warehouse: WarehouseResource) -> list[str]:
    return warehouse.get().sql("SELECT DISTINCT task_type FROM criteria_latest WHERE coalesce(active, true) "
                               "ORDER BY task_type")["task_type"].to_list()


# ---------------------------------------------------------------- the workflow asset


class CriteriaConfig(dg.Config):
    scenarios: list[str] = Field(default_factory=lambda: list(SCENARIOS), description="scenarios to code")
    batch_size: int = Field(default=2, description="contrasted samples per open-coding batch (demo: 2)")
    max_batches: int = Field(default=1, description="open-coding batches at most; saturation may stop earlier "
                             "(demo: 1; full runs: 5+)")
    novelty_threshold: float = Field(default=0.93, description="a concept this similar (cosine) to an earlier one is "
                                     "not new (saturation)")
    link_threshold: float = Field(default=0.9, description="axial coding: concepts at least this similar are linked")
    max_dimensions: int = Field(default=2, description="dimensions per scenario at most (demo: 2)")
    max_criteria: int = Field(default=1, description="criteria per dimension at most (demo: 1; the agent may write 2)")
    note_fallback: bool = Field(default=True, description="code a sample from its human memo (built-in samples' "
                                "`note`) when the agent's answer gives no usable concept (recorded as source note)")
    open_tokens: int = Field(default=96, description="open-coding answer budget in tokens (demo: 96; a full run on "
                             "an endpoint: 256)")
    name_tokens: int = Field(default=64, description="dimension-naming answer budget in tokens")
    selective_tokens: int = Field(default=128, description="criterion-writing answer budget in tokens (a full run: 256)")
    seed: int = 0


def _workflow_id(scenario: str, model: str, embedder: str, samples: list[gt.Sample], config: CriteriaConfig) -> str:
    settings = config.model_dump(exclude={"scenarios"})
    return content_id("gt-workflow", gt.AGENT_VERSION, scenario, model, embedder, settings,
                      [s.sample_id for s in samples])


def workflow_rows(w: gt.Workflow, workflow_id: str, model: str, embedder: str,
                  current: list[dict[str, Any]]) -> tuple[list[Any], str | None]:
    """Every stage's events of one scenario, and the criteria version (None when no criteria came out)."""
    rows: list[Any] = []
    code_ids: dict[int, str] = {}
    for c in w.coding.codes:
        row = OpenCodeRow(scenario=w.scenario, workflow_id=workflow_id, batch_index=c.batch_index,
                          sample_id=c.sample.sample_id, concept_index=c.concept_index, concept=c.concept,
                          evidence=c.evidence, evidence_side=c.evidence_side, is_new=c.is_new, status=c.status,
                          error=c.error, model=model, agent_version=gt.AGENT_VERSION, llm_call_id=c.llm_call_id,
                          source=c.source)
        code_ids[id(c)] = row.event_id()
        rows.append(row)
    rows += [SaturationRow(scenario=w.scenario, workflow_id=workflow_id, batch_index=p.batch_index, samples=p.samples,
                           concepts=p.concepts, new_concepts=p.new_concepts, total_concepts=p.total_concepts,
                           saturated=p.saturated, stop_reason=p.stop_reason) for p in w.coding.curve]
    group_ids: dict[int, str] = {}
    for g in w.groups:
        row = AxialGroupRow(scenario=w.scenario, workflow_id=workflow_id, group_index=g.index, dimension=g.dimension,
                            description=g.description, concepts=[c.concept for c in g.members],
                            concept_ids=[code_ids[id(c)] for c in g.members], support=g.support, source=g.source,
                            error=g.error, model=model, agent_version=gt.AGENT_VERSION, embedder=embedder,
                            index_version=w.index_version, llm_call_id=g.llm_call_id)
        group_ids[id(g)] = row.event_id()
        rows.append(row)
    if not w.criteria:
        return rows, None
    version = content_id("criteria-version", w.scenario, [(c.dimension.dimension, c.name, c.description, c.rubric,
                                                           round(c.weight, 6)) for c in w.criteria])
    prev = next((r["version"] for r in current if r.get("version")), None)
    if prev == version:  # already the current set: a re-run adds nothing
        return rows, version
    new = [CriterionRow(task_type=w.scenario, dimension=c.dimension.dimension, criterion=c.name,
                        weight=round(c.weight, 6), parent=group_ids[id(c.dimension)], evidence=c.evidence,
                        version=version, workflow_id=workflow_id, description=c.description, rubric=c.rubric,
                        dimension_weight=round(sum(x.weight for x in w.criteria if x.dimension is c.dimension), 6),
                        source=c.source, active=True, supersedes=prev, concepts=c.concepts, model=model,
                        agent_version=gt.AGENT_VERSION, error=c.error, llm_call_id=c.llm_call_id)
           for c in w.criteria]
    kept = {(r.dimension, r.criterion) for r in new}
    retired = [CriterionRow(task_type=w.scenario, dimension=r["dimension"], criterion=r["criterion"], weight=0.0,
                            parent=r["parent"], evidence=list(r["evidence"] or []), version=version,
                            workflow_id=workflow_id, description=r["description"], rubric=r["rubric"],
                            dimension_weight=0.0, source=r["source"], active=False, supersedes=prev,
                            concepts=r["concepts"], model=r["model"], agent_version=r["agent_version"],
                            error="retired: not in the new version")
               for r in current if (r["dimension"], r["criterion"]) not in kept]
    return rows + new + retired, version


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, kinds={"duckdb", "lancedb"}, code_version="1",
          deps=[scenario_samples, seed_preference_pairs, human_labels],
          description="Writer-R1's Grounded-Theory criteria, per scenario (a loop inside this asset, so the scenarios "
          "share one batched model call per stage): open coding of contrasted samples (greetings: non-evaluation seed "
          "pairs; others: good × flawed built-in examples of the coding prompts) into concepts with quoted evidence "
          "(`gt_open_codes`), batch by batch until a batch adds no new concept (`gt_saturation`, the curve); axial "
          "coding by linking concept embeddings in LanceDB and an agent naming and merging the groups "
          "(`gt_axial_groups`; a group of one concept is named by it); selective coding into criteria with a description, a 1–5 rubric and a weight "
          "(`criteria`). Weights = share of contrasted samples whose concepts fall in the dimension. Malformed or "
          "empty agent answers are recorded with their reason; failed naming / criteria writing falls back to the "
          "coded concepts (`source = fallback`). A new version retires the criteria it drops; "
          "`criteria_latest WHERE active` is the current set. Defaults are demo-sized.")
def criteria(context: dg.AssetExecutionContext, config: CriteriaConfig, warehouse: WarehouseResource,
             llm: LLMResource, embedder: EmbedderResource, vectors: VectorStoreResource) -> dg.MaterializeResult:
    runtime = llm.runtime(context)
    emb, store = embedder.get(), vectors.get()
    wf_config = gt.WorkflowConfig(batch_size=config.batch_size, max_batches=config.max_batches,
                                  novelty_threshold=config.novelty_threshold, link_threshold=config.link_threshold,
                                  max_dimensions=config.max_dimensions, max_criteria=config.max_criteria,
                                  note_fallback=config.note_fallback, open_tokens=config.open_tokens,
                                  name_tokens=config.name_tokens, selective_tokens=config.selective_tokens)
    samples: dict[str, list[gt.Sample]] = {}
    for scenario in config.scenarios:
        samples[scenario], _ = scenario_split(warehouse, scenario, config.seed)
        if not samples[scenario]:
            context.log.warning(f"{scenario}: no contrasted samples (materialize scenario_samples / seed data)")
            del samples[scenario]
    flows = gt.run_all(runtime, emb, store, samples, wf_config, table=lambda sc: CONCEPT_TABLE.format(scenario=sc))
    rows: list[Any] = []
    summary = []
    for scenario, w in flows.items():
        wid = _workflow_id(scenario, runtime.model_id, emb.model_id, samples[scenario], config)
        out, version = workflow_rows(w, wid, runtime.model_id, emb.model_id, current_criteria(warehouse, scenario))
        rows += out
        if w.index_version is not None:
            rows.append(VectorIndexRow(index_name=CONCEPT_TABLE.format(scenario=scenario), lance_version=w.index_version,
                                       uri=store.uri, embedder=emb.model_id, rows=len(w.coding.concepts())))
        codes = w.coding.codes
        summary.append({"scenario": scenario, "samples_coded": sum(p.samples for p in w.coding.curve),
                        "concepts": sum(c.ok and c.source == "agent" for c in codes),
                        "from_notes": sum(c.ok and c.source == "note" for c in codes),
                        "rejected": sum(not c.ok for c in codes),
                        "dimensions": len(w.groups), "named_by_agent": sum(g.source == "agent" for g in w.groups),
                        "criteria": len(w.criteria), "by_agent": sum(c.source == "agent" for c in w.criteria),
                        "stop": w.coding.curve[-1].stop_reason if w.coding.curve else None,
                        "version": version})
    if not summary:
        raise dg.Failure("no scenario had contrasted samples: materialize scenario_samples and the seed data")
    from training.metrics import markdown_table

    return warehouse.record(context, rows, main_table="criteria", metadata={
        "scenarios": dg.MetadataValue.md(markdown_table(summary, list(summary[0]))),
        "criteria_preview": dg.MetadataValue.md(markdown_table(
            [{"scenario": r.task_type, "dimension": r.dimension, "criterion": r.criterion, "weight": r.weight,
              "source": r.source, "active": r.active} for r in rows if isinstance(r, CriterionRow)],
            ["scenario", "dimension", "criterion", "weight", "source", "active"])),
        **runtime.stats.as_metadata()})


# ---------------------------------------------------------------- scores and agreement


class CriteriaScoresConfig(dg.Config):
    sample_size: int = Field(default=4, description="labelled evaluation items per scenario, both labels equally "
                             "(demo: 4; 0 = all)")
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")
    seed: int = 0


def _items(warehouse: WarehouseResource, scenario: str, sample_size: int, seed: int) -> list[dict]:
    _, items = scenario_split(warehouse, scenario, seed)
    return principles.balanced_head(items, sample_size, label=lambda i: i["label"])  # both labels in a small sample


def response_id(prompt: str, response: str) -> str:
    return content_id("response", prompt, response)


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, kinds={"duckdb"}, code_version="1",
          deps=[criteria, dg.AssetKey("judge_model")],
          description="Each scenario's labelled evaluation items scored against its current criteria: per criterion "
          "the judge's P(是) for \"reaches level 4 of the rubric\" (one forward pass, `criteria_scores`) and the "
          "weighted total (`criteria_totals`, with the human label). The same scoring is the `criteria` GRPO "
          "reward (`training.rewards.CriteriaReward`).")
def criteria_scores(context: dg.AssetExecutionContext, config: CriteriaScoresConfig, warehouse: WarehouseResource,
                    llm: LLMResource) -> dg.MaterializeResult:
    rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    rows: list[Any] = []
    summary = []
    for scenario in scenarios_with_criteria(warehouse):
        current = current_criteria(warehouse, scenario)
        items = _items(warehouse, scenario, config.sample_size, config.seed)
        if not current or not items:
            continue
        cs = [crit.Criterion.from_row(r) for r in current]
        version = current[0]["version"] or "unversioned"
        scored = crit.score_responses(rt, [(i["prompt"], i["response"]) for i in items], cs, tag=f"criteria-{scenario}")
        for it, s in zip(items, scored, strict=True):
            rid = response_id(it["prompt"], it["response"])
            for c, r in zip(cs, s.results, strict=True):
                rows.append(CriteriaScoreRow(
                    scenario=scenario, criteria_version=version, criterion_id=c.key, criterion=c.name,
                    response_id=rid, prompt=it["prompt"], response=it["response"], score=s.per_criterion[c.name],
                    weight=c.weight, status=r.status, error=r.error, model=rt.model_id,
                    prompt_version=crit.PROMPT_VERSION, llm_call_id=r.request_key))
            rows.append(CriteriaTotalRow(scenario=scenario, criteria_version=version, response_id=rid,
                                         prompt=it["prompt"], response=it["response"], total=s.total,
                                         per_criterion=s.per_criterion, scored=s.scored, criteria=len(cs),
                                         label=it["label"], label_source=it["source"], model=rt.model_id,
                                         prompt_version=crit.PROMPT_VERSION))
        summary.append({"scenario": scenario, "items": len(items), "criteria": len(cs), "version": version})
    if not rows:
        raise dg.Failure("no scenario has both criteria and labelled evaluation items: materialize criteria")
    from training.metrics import markdown_table

    return warehouse.record(context, rows, main_table="criteria_scores", metadata={
        "scenarios": dg.MetadataValue.md(markdown_table(summary, list(summary[0]))), "judge_model": rt.model_id,
        **rt.stats.as_metadata()})


class CriteriaAgreementConfig(dg.Config):
    principles_ablation: bool = Field(default=True, description="also score the greeting items with the hand-written "
                                      "principles (agents.principles.INITIAL_S_D) as equally weighted criteria")
    use_judge_model: bool = Field(default=True, description="as criteria_scores (must match it)")


def _report(variant: str, scores: list[float | None], truth: list[int], lengths: list[int]) -> list[dict]:
    """Labeller report of a continuous score: predictions at the median (no calibration split is this small)."""
    ok = sorted(s for s in scores if s is not None)
    t = ok[len(ok) // 2] if ok else 0.5
    preds = [None if s is None else int(s >= t) for s in scores]
    return [{"variant": variant, **r} for r in labeller_report(preds, truth, lengths, scores=scores)]


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name=GROUP, kinds={"duckdb"}, code_version="1",
          deps=[criteria_scores],
          description="How well the criteria total agrees with human labels, per scenario, beside the length "
          "baseline (AUC, and accuracy / kappa with the median total as threshold), on all items and the 30–49-char "
          "band; and the ablation on greetings: the same scoring with the hand-written Path B principles as "
          "equally weighted criteria (Writer-R1 claims automatic criteria match human-written ones). Rows in "
          "`agreement_metrics` (evaluator `criteria`, variant `<scenario>:auto` / `greeting:hand_principles`).")
def criteria_agreement(context: dg.AssetExecutionContext, config: CriteriaAgreementConfig,
                       warehouse: WarehouseResource, llm: LLMResource) -> dg.MaterializeResult:
    rt = judge_runtime(context, warehouse, llm, config.use_judge_model)
    wh = warehouse.get()
    report: list[dict] = []
    rows = []
    for scenario in scenarios_with_criteria(warehouse):
        current = current_criteria(warehouse, scenario)
        version = current[0]["version"] if current else None
        df = wh.sql("SELECT prompt, response, total, label, response_id FROM criteria_totals_latest WHERE scenario = ? "
                    "AND criteria_version = ? AND model = ? AND label IS NOT NULL ORDER BY response_id",
                    [scenario, version, rt.model_id]).to_dicts()
        if not df:
            continue
        truth, lengths = [int(r["label"]) for r in df], [len(r["response"]) for r in df]
        eval_set = content_id(sorted(r["response_id"] for r in df))
        variants = {f"{scenario}:auto": [r["total"] for r in df]}
        if scenario == GREETING and config.principles_ablation:
            hand = crit.principles_as_criteria(scenario, principles.INITIAL_S_D)
            variants[f"{scenario}:hand_principles"] = [s.total for s in crit.score_responses(
                rt, [(r["prompt"], r["response"]) for r in df], hand, tag="criteria-hand")]
        for variant, scores in variants.items():
            rep = _report(variant, scores, truth, lengths)
            report += rep
            rows += [AgreementRow(evaluator="criteria", eval_set=eval_set, model=rt.model_id,
                                  **{k: v for k, v in r.items() if k in AgreementRow.model_fields}) for r in rep]
    if not rows:
        raise dg.Failure("no criteria totals with human labels: materialize criteria_scores")
    headline = {r["variant"]: r["auc"] for r in report if r["subset"] == "all"}
    return warehouse.record(context, rows, main_table="agreement_metrics", metadata={
        "agreement": dg.MetadataValue.md(report_markdown(report)),
        "auc_by_variant": dg.MetadataValue.json(json.loads(json.dumps(headline))), "judge_model": rt.model_id,
        **rt.stats.as_metadata()})
