"""policy_evaluation: base, SFT and GRPO policies on held-out prompts, by the reward model and the
judge, with length, diversity and how much of any gain the change in length explains."""


import dagster as dg
from pydantic import Field

from agents import principles
from assets.path_b import chosen_principles
from assets.training import grpo_policy, heldout, reward_model, sft_model
from resources import LLMResource, TrainingResource, WarehouseResource
from training.generation import generate
from training.metrics import distinct_n, length_adjusted_gain, markdown_table, self_bleu
from training.scoring import RewardScorer
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import PolicyEvaluationRow


class PolicyEvaluationConfig(dg.Config):
    max_prompts: int = Field(default=8, description="held-out prompts (0 = all)")
    heldout_fraction: float = Field(default=0.1, description="must match grpo_policy's")
    max_new_tokens: int = 64
    with_judge: bool = Field(default=True, description="also score with the principle-guided judge")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dg.asset(group_name="evaluation", deps=[grpo_policy, sft_model, reward_model], kinds={"pytorch", "duckdb"},
          code_version="1",
          description="Excellence rate by the judge and by the reward model, mean length, distinct-n and self-BLEU "
          "of the base, SFT and GRPO policies on held-out prompts; gains beside what the length change explains.")
def policy_evaluation(context: dg.AssetExecutionContext, config: PolicyEvaluationConfig, warehouse: WarehouseResource,
                      training: TrainingResource, llm: LLMResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    ps = wh.sql("SELECT id, text FROM prompts_latest ORDER BY id").to_dicts()
    held = [r for r in ps if heldout(r["id"], config.heldout_fraction)]
    if config.max_prompts:
        held = held[: config.max_prompts]
    if not held:
        raise dg.Failure("no held-out prompts: materialize prompts")
    texts = [r["text"] for r in held]
    eval_set = content_id(sorted(r["id"] for r in held))
    rm = latest_model(wh, "reward")
    scorer = RewardScorer(rm["artifact_path"]) if rm else None
    threshold = ((rm or {}).get("metrics") or {}).get("eval_labels", {}).get("threshold") if rm else None
    pid, s_d = chosen_principles(warehouse, None) if config.with_judge else (None, None)
    rt = llm.runtime(context) if config.with_judge else None

    policies = [("base", training.base_model, training.resolve())]
    for kind in ("sft", "grpo"):
        if m := latest_model(wh, kind):
            policies.append((kind, m["model_id"], m["artifact_path"]))
    rows, scores, lengths = [], {}, {}
    for kind, model_id, path in policies:
        context.log.info(f"generating {len(texts)} greetings with {kind} ({model_id})")
        outs = generate(path, texts, max_new_tokens=config.max_new_tokens)
        rm_scores = scorer.score(texts, outs) if scorer else []
        judged = principles.detect(rt, list(zip(texts, outs, strict=True)), s_d, tag=f"policy-{model_id}") \
            if rt else []
        labels = [r.parsed["label"] for r in judged if r.ok]
        scores[kind], lengths[kind] = rm_scores, [len(o) for o in outs]
        rows.append(PolicyEvaluationRow(
            model_id=model_id, model_kind=kind, eval_set=eval_set, reward_model_id=rm["model_id"] if rm else None,
            principles_id=pid, n=len(outs), reward_mean=_mean(rm_scores),
            rm_excellence_rate=_mean([float(s >= threshold) for s in rm_scores]) if threshold is not None else None,
            judge_excellence_rate=_mean([float(x) for x in labels]), judge_parse_failures=len(judged) - len(labels),
            mean_chars=_mean([float(n) for n in lengths[kind]]) or 0.0, distinct_1=distinct_n(outs, 1),
            distinct_2=distinct_n(outs, 2), self_bleu=self_bleu(outs), samples=outs[:5]))
    meta = {"heldout_prompts": len(texts), "reward_model_id": rm["model_id"] if rm else "none",
            "principles_id": pid or "none", "policies": dg.MetadataValue.md(_table(rows))}
    for kind in ("sft", "grpo"):
        if scores.get(kind) and scores.get("base"):
            gain = length_adjusted_gain(scores["base"], scores[kind], lengths["base"], lengths[kind])
            meta[f"{kind}_vs_base_rm"] = dg.MetadataValue.json({k: round(v, 4) for k, v in gain.items()})
    meta["samples"] = dg.MetadataValue.md("\n".join(f"- **{r.model_kind}**: {r.samples[0] if r.samples else ''}"
                                                    for r in rows))
    if rt:
        meta.update(rt.stats.as_metadata())
    return warehouse.record(context, rows, main_table="policy_evaluations", metadata=meta)


def _table(rows: list[PolicyEvaluationRow]) -> str:
    return markdown_table([r.model_dump() for r in rows], (
        "model_kind", "n", "reward_mean", "rm_excellence_rate", "judge_excellence_rate", "mean_chars",
        "distinct_1", "distinct_2", "self_bleu"))
