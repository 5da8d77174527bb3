"""policy_evaluation: base, SFT and GRPO policies on held-out prompts, each scored by the training
reward model, by an independent evaluator (a reward model trained on the other half of the pairs),
by the trained judge (P(是) and the calibrated excellence rate) and by length and diversity; every
trained policy compared with SFT prompt by prompt (gain ± standard error, the part the length
change explains, win rate with a 95% interval, also on outputs of similar length)."""


import dagster as dg
from pydantic import Field

from agents import principles
from assets.judging import judge_runtime, threshold_for
from assets.metadata import records_table
from assets.path_b import chosen_principles
from assets.plots import histogram, markdown_image
from assets.pools import LLM_RETRY, MODEL_POOL
from assets.training import evaluator_model, grpo_policy, mrpo_policy, policy_prompts, reward_model, sft_model
from resources import LLMResource, TrainingResource, WarehouseResource
from training.generation import generate
from training.metrics import distinct_n, markdown_table, mean_se, paired_comparison, repeat_rate, self_bleu
from training.scoring import RewardScorer
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import PolicyEvaluationRow

POLICY_COLUMNS = ("model_kind", "n", "evaluator_mean", "evaluator_se", "judge_score_mean", "judge_score_se",
                  "judge_excellence_rate", "reward_mean", "mean_chars", "distinct_2", "repeat_rate",
                  "evaluator_gain_vs_sft", "evaluator_gain_vs_sft_se", "length_explained_gain", "win_rate_vs_sft",
                  "win_rate_len_matched", "model_id")


class PolicyEvaluationConfig(dg.Config):
    max_prompts: int = Field(default=64, description="held-out prompts (0 = all)")
    heldout_fraction: float = Field(default=0.1, description="must match grpo_policy's")
    max_new_tokens: int = 64
    with_judge: bool = Field(default=True, description="also score with the trained judge")
    with_reward_model: bool = Field(default=True, description="also report the training reward model's score (a "
                                    "training signal shown beside the independent evaluator, never the comparison)")
    use_judge_model: bool = True


def _newest_policies(wh) -> list[tuple[str, str, str]]:
    """(label, model id, path): SFT, and the newest GRPO policy of each reward kind."""
    out = []
    if m := latest_model(wh, "sft"):
        out.append(("sft", m["model_id"], m["artifact_path"]))
    df = wh.sql("SELECT model_id, artifact_path, json_extract_string(hyperparams, '$.reward') AS reward "
                "FROM models_latest WHERE kind = 'grpo' ORDER BY created_at DESC")
    seen = set()
    for r in df.iter_rows(named=True):
        if r["reward"] not in seen:
            seen.add(r["reward"])
            out.append((f"grpo({r['reward']})", r["model_id"], r["artifact_path"]))
    if m := latest_model(wh, "mrpo"):
        out.append((f"mrpo({m['hyperparams'].get('reward')})", m["model_id"], m["artifact_path"]))
    return out


def _r(x):
    return None if x is None else round(float(x), 4)


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name="evaluation", deps=[grpo_policy, mrpo_policy, sft_model, reward_model, evaluator_model],
          kinds={"pytorch", "duckdb"}, code_version="2",
          description="Base, SFT, GRPO and MRPO policies on held-out prompts (never trained on): training-RM and "
          "independent-evaluator scores and the judge's P(是), each with a standard error; excellence rates; "
          "length, distinct-n, self-BLEU, repeated phrases; each trained policy against SFT prompt by prompt "
          "(gain ± SE, the part length explains, win rate with 95% interval, also on similar-length outputs).")
def policy_evaluation(context: dg.AssetExecutionContext, config: PolicyEvaluationConfig, warehouse: WarehouseResource,
                      training: TrainingResource, llm: LLMResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    held = policy_prompts(warehouse, config.heldout_fraction, True)
    if config.max_prompts:
        held = held[: config.max_prompts]
    if not held:
        raise dg.Failure("no held-out prompts: materialize prompts")
    texts = [r["text"] for r in held]
    eval_set = content_id(sorted(r["id"] for r in held))
    rm, ev = latest_model(wh, "reward"), latest_model(wh, "evaluator")
    scorer = RewardScorer(rm["artifact_path"]) if rm and config.with_reward_model else None
    evaluator = RewardScorer(ev["artifact_path"]) if ev else None
    threshold = ((rm or {}).get("metrics") or {}).get("eval_labels", {}).get("threshold") if rm else None
    pid, s_d = chosen_principles(warehouse, None) if config.with_judge else (None, None)
    rt = judge_runtime(context, warehouse, llm, config.use_judge_model) if config.with_judge else None
    jt = threshold_for(context, warehouse, "path_b/judge", rt.model_id, principles.PROMPT_VERSION, pid)[0] \
        if rt else None

    policies = [("base", training.base_model, training.resolve()), *_newest_policies(wh)]
    outs, ev_scores = {}, {}
    judge_ps: dict[str, list[float]] = {}
    rows = []
    for kind, model_id, path in policies:
        context.log.info(f"generating {len(texts)} greetings with {kind} ({model_id})")
        o = generate(path, texts, max_new_tokens=config.max_new_tokens)
        rm_s = scorer.score(texts, o) if scorer else []
        ev_s = evaluator.score(texts, o) if evaluator else []
        js = [p for p in principles.probabilities(principles.detect(rt, list(zip(texts, o, strict=True)), s_d,
                                                                    tag=f"policy-{model_id}"))] if rt else []
        rm_mean, rm_se = mean_se(rm_s)
        ev_mean, ev_se = mean_se(ev_s)
        j_ok = [p for p in js if p is not None]
        outs[kind], ev_scores[kind], judge_ps[kind] = o, ev_s, j_ok
        j_mean, j_se = mean_se(j_ok)
        row = dict(model_id=model_id, model_kind=kind, eval_set=eval_set, reward_model_id=rm["model_id"] if rm else None,
                   principles_id=pid, n=len(o), reward_mean=rm_mean, reward_se=rm_se,
                   rm_excellence_rate=mean_se([float(s >= threshold) for s in rm_s])[0] if threshold is not None else None,
                   judge_excellence_rate=mean_se([float(p >= jt) for p in j_ok])[0] if jt is not None else None,
                   judge_parse_failures=len(js) - len(j_ok), judge_score_mean=j_mean, judge_score_se=j_se,
                   evaluator_model_id=ev["model_id"] if ev else None, evaluator_mean=ev_mean, evaluator_se=ev_se,
                   mean_chars=mean_se([float(len(x)) for x in o])[0] or 0.0, distinct_1=distinct_n(o, 1),
                   distinct_2=distinct_n(o, 2), self_bleu=self_bleu(o), repeat_rate=repeat_rate(o), samples=o[:5])
        if kind not in ("base", "sft") and "sft" in outs and ev_s:
            cmp = paired_comparison(ev_s, ev_scores["sft"], [len(x) for x in o], [len(x) for x in outs["sft"]])
            row.update(evaluator_gain_vs_sft=cmp["gain"], evaluator_gain_vs_sft_se=cmp["gain_se"],
                       length_explained_gain=cmp["explained_by_length"], win_rate_vs_sft=cmp["win_rate"],
                       win_rate_ci=list(cmp["win_rate_ci"]) if cmp["win_rate_ci"] else None,
                       win_rate_len_matched=cmp["win_rate_len_matched"])
        rows.append(PolicyEvaluationRow(**row))
    meta = {"heldout_prompts": len(texts), "reward_model_id": rm["model_id"] if rm else "none",
            "evaluator_model_id": ev["model_id"] if ev else "none", "judge_model": rt.model_id if rt else "none",
            "principles_id": pid or "none", "policies": dg.MetadataValue.md(_table(rows))}
    judge_means = [r.judge_score_mean for r in rows if r.judge_score_mean is not None]
    if judge_means:
        meta["judge_score_spread_across_policies"] = _r(max(judge_means) - min(judge_means))
    meta["policy_table"] = records_table([r.model_dump() for r in rows], POLICY_COLUMNS)
    dists = {"evaluator score": ev_scores, "judge P(是)": judge_ps}
    for name, groups in dists.items():
        if any(groups.values()):
            meta[f"{name.split()[0]}_distribution"] = dg.MetadataValue.md(markdown_image(
                histogram({k: v for k, v in groups.items() if v}, xlabel=name), f"{name} by policy"))
    meta["samples"] = dg.MetadataValue.md("\n".join(f"- **{r.model_kind}**: {r.samples[0] if r.samples else ''}"
                                                    for r in rows))
    if rt:
        meta.update(rt.stats.as_metadata())
    return warehouse.record(context, rows, main_table="policy_evaluations", metadata=meta)


def _pm(mean, se) -> str:
    return "–" if mean is None else f"{mean:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def _table(rows: list[PolicyEvaluationRow]) -> str:
    data = [{"policy": r.model_kind, "n": r.n, "evaluator": _pm(r.evaluator_mean, r.evaluator_se),
             "train RM": _pm(r.reward_mean, r.reward_se), "judge P(是)": _pm(r.judge_score_mean, r.judge_score_se),
             "judge excellent": r.judge_excellence_rate, "chars": r.mean_chars, "distinct-2": r.distinct_2,
             "repeats": r.repeat_rate,
             "vs SFT (evaluator)": _pm(r.evaluator_gain_vs_sft, r.evaluator_gain_vs_sft_se),
             "length explains": r.length_explained_gain, "win rate": r.win_rate_vs_sft,
             "win 95% CI": "–" if not r.win_rate_ci else f"{r.win_rate_ci[0]:.2f}–{r.win_rate_ci[1]:.2f}",
             "win (similar length)": r.win_rate_len_matched} for r in rows]
    return markdown_table(data, list(data[0]) if data else [],
                          fmt=lambda v: f"{v:.3f}" if isinstance(v, float) else "–" if v is None else str(v))
