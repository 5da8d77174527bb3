"""MRPO's inference mode as an asset: reflection rounds on held-out prompts, with a LanceDB memory.

The rounds themselves are ``agents.reflection``; this asset picks the prompts, writes each round's
events as its own snapshot (so a killed run resumes at the next round), rebuilds the memory from the
recorded events after every round, and reports the criteria total per round.
"""


from typing import Any, Literal

import dagster as dg
from pydantic import Field

from agents import criteria as crit
from agents import policy
from agents import reflection as rf
from agents.reflection_memory import TABLE as MEMORY_TABLE
from agents.reflection_memory import LanceMemory
from agents.scenarios import SCENARIOS
from agents.text_checks import content_problem
from assets.criteria import criteria, current_criteria, scenario_split, scenarios_with_criteria
from assets.judging import judge_runtime
from assets.metadata import records_table
from assets.plots import line_plot, markdown_image
from assets.pools import LLM_RETRY, MODEL_POOL
from resources import EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from resources.llm.types import ChatRequest, Sampling
from training.metrics import mean_se
from warehouse.ids import content_id
from warehouse.registry import latest_model
from warehouse.schema import ReflectionRow, VectorIndexRow


class ReflectionsConfig(dg.Config):
    scenarios: list[str] = Field(default_factory=lambda: list(SCENARIOS), description="scenarios to reflect on")
    prompts_per_scenario: int = Field(default=8, description="held-out prompts per scenario (0 = all; demo: 1)")
    rounds: int = Field(default=3, ge=1, description="reflection rounds at most per prompt")
    memory_k: int = Field(default=2, ge=0, description="remembered lessons per prompt and round (0 = no memory)")
    draft_tokens: int = Field(default=128, description="first-draft budget in tokens: the revisions' budget by default, "
                              "since a draft cut short makes round 1 gain by length alone (bench/RESULTS.md)")
    critique_tokens: int = Field(default=96, description="critique budget in tokens")
    revision_tokens: int = Field(default=128, description="revision budget in tokens")
    revision_temperature: float = Field(default=0.7, description="revisions are sampled (seeded by the round)")
    stop_at: float = Field(default=0.9, description="a chain stops when every criterion has P(是) at least this")
    accept_by: Literal["criteria", "overall", "both", "reward"] = Field(
        default="criteria", description="a revision replaces its draft when this rises: the criteria total, the "
        "judge's P(是) with all criteria in one prompt (overall), both, or the newest reward model's score less its "
        "within-chain length trend (reward; never the evaluator) (agents/reflection.py)")
    revisions: int = Field(default=1, ge=1, le=16, description="revisions the policy samples per chain and round; the "
                           "best by the acceptance score is the round's (agents/reflection.py)")
    use_judge_model: bool = Field(default=True, description="score with the newest trained judge (local backends)")
    writer_model: str | None = Field(default=None, description="drafts and revises: default the newest SFT model "
                                     "(local backends), else the llm resource's model")
    seed: int = 0


def heldout_prompts(warehouse: WarehouseResource, scenario: str, n: int, seed: int) -> list[str]:
    """The scenario's evaluation prompts (never coded into its criteria, never trained on), in a fixed
    hashed order; the first ``n`` (all when 0)."""
    _, items = scenario_split(warehouse, scenario, seed)
    prompts = sorted({i["prompt"] for i in items}, key=lambda p: content_id("reflect-prompt", seed, p))
    return prompts[:n] if n else prompts


def _row(rd: rf.Round, criteria_version: str, models: tuple[str, str, str], memory_version: int | None,
         reward_model: str | None = None) -> ReflectionRow:
    """``reward_model``: the model that accepted revisions (``accept_by = reward``), else None."""
    rs = rd.revision_score
    return ReflectionRow(
        chain_id=rd.chain_id, round=rd.round, scenario=rd.scenario, prompt=rd.prompt, draft=rd.draft,
        draft_id=content_id("response", rd.prompt, rd.draft), draft_total=rd.draft_score.total,
        draft_scores=rd.draft_score.per_criterion, weakest=rd.weakest, critique=rd.critique,
        critique_source=rd.critique_source, critique_error=rd.critique_error, revision=rd.revision,
        revision_id=content_id("response", rd.prompt, rd.revision) if rd.revision else None,
        revision_status=rd.revision_status, revision_error=rd.revision_error,
        revision_total=rs.total if rs else None, revision_scores=rs.per_criterion if rs else None, gain=rd.gain,
        accepted=rd.accepted, memory_ids=[m.memory_id for m in rd.lessons],
        memory_version=memory_version if rd.lessons else None, criteria_version=criteria_version,
        writer_model=models[0], critic_model=models[1], judge_model=models[2], agent_version=rf.AGENT_VERSION, llm_call_ids=rd.llm_call_ids,
        accept_by=rd.accept_by, draft_overall=rd.draft_overall, revision_overall=rd.revision_overall,
        revisions_sampled=rd.revisions_sampled, draft_reward=rd.draft_reward, revision_reward=rd.revision_reward,
        reward_model=reward_model)


def round_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round: chains, the criteria total of the draft going in and of the best text coming out
    (the revision if accepted, else the draft), ± standard error, accepted share, mean characters."""
    out = []
    for r in sorted({x["round"] for x in rows}):
        rr = [x for x in rows if x["round"] == r and x["draft_total"] is not None]
        if not rr:
            continue
        best = [x["revision_total"] if x["accepted"] else x["draft_total"] for x in rr]
        best_chars = [len(x["revision"] if x["accepted"] else x["draft"]) for x in rr]
        d, d_se = mean_se([x["draft_total"] for x in rr])
        b, b_se = mean_se(best)
        out.append({"round": r, "chains": len(rr), "draft_total": d, "draft_se": d_se, "after_total": b,
                    "after_se": b_se, "accepted": sum(x["accepted"] for x in rr) / len(rr),
                    "critique_by_agent": sum(x["critique_source"] == "agent" for x in rr) / len(rr),
                    "draft_chars": sum(len(x["draft"]) for x in rr) / len(rr),
                    "after_chars": sum(best_chars) / len(rr)})
    return out


@dg.asset(pool=MODEL_POOL, retry_policy=LLM_RETRY, group_name="criteria", kinds={"duckdb", "lancedb"},
          code_version="1", deps=[criteria, dg.AssetKey("judge_model")],
          description="MRPO inference mode (Writer-R1): for held-out prompts of each scenario with criteria, the policy "
          "(the newest SFT model; `writer_model`) drafts; then per round the draft is scored against the current "
          "criteria (the judge's P(是) per criterion), critiqued on its weakest criteria by the llm resource's model "
          "(or — when that answer is not usable Chinese — by the criteria's level-5 rubric, `critique_source = "
          "scores`), and revised by the policy (`revisions` samples, the best by the acceptance score kept as the "
          "round's revision); the revision replaces the draft only when its criteria total is "
          "higher (`accept_by`: or the judge's overall P(是), both, or the newest reward model's length-neutral "
          "score). Lessons (accepted revisions of other chains, nearest prompts in the LanceDB `reflection_memory`, "
          "rebuilt from these events after every round) go into the critique and revision prompts. One "
          "`reflections` row per chain and round, committed round by round (a re-run resumes); improvement per "
          "round is a SQL query.")
def reflections(context: dg.AssetExecutionContext, config: ReflectionsConfig, warehouse: WarehouseResource,
                llm: LLMResource, embedder: EmbedderResource, vectors: VectorStoreResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    writer_model = config.writer_model
    if writer_model is None and llm.backend != "openai" and (sft := latest_model(wh, "sft")):
        writer_model = sft["model_id"]
    writer = llm.runtime(context, model=writer_model)
    critic = llm.runtime(context)
    judge = judge_runtime(context, warehouse, llm, config.use_judge_model)
    models = (writer.model_id, critic.model_id, judge.model_id)
    settings = rf.Settings(critique_tokens=config.critique_tokens, revision_tokens=config.revision_tokens,
                           memory_k=config.memory_k, stop_at=config.stop_at,
                           revision_temperature=config.revision_temperature, accept_by=config.accept_by,
                           revisions=config.revisions)
    reward, reward_model = None, None
    if config.accept_by == "reward":
        if not (rm := latest_model(wh, "reward")):
            raise dg.Failure("accept_by='reward' needs a registered reward model: materialize reward_model first")
        from training.scoring import RewardScorer  # torch: loaded only when asked for

        reward, reward_model = RewardScorer(rm["artifact_path"]).score, rm["model_id"]
    memory = LanceMemory(embedder.get(), vectors.get())
    criteria_by: dict[str, list[crit.Criterion]] = {}
    versions: dict[str, str] = {}
    prompts: list[tuple[str, str]] = []
    for scenario in [s for s in scenarios_with_criteria(warehouse) if s in config.scenarios]:
        current = current_criteria(warehouse, scenario)
        criteria_by[scenario] = [crit.Criterion.from_row(r) for r in current]
        versions[scenario] = current[0]["version"] or "unversioned"
        prompts += [(scenario, p) for p in heldout_prompts(warehouse, scenario, config.prompts_per_scenario, config.seed)]
    if not prompts:
        raise dg.Failure("no scenario has both criteria and held-out prompts: materialize criteria")
    draft_sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=config.draft_tokens, seed=config.seed)
    drafts = writer.chat([ChatRequest(messages=policy.messages(p), sampling=draft_sampling, item=f"draft-{i}")
                          for i, (_, p) in enumerate(prompts)])
    chains: list[rf.Chain] = []
    unusable = []
    for (scenario, prompt), d in zip(prompts, drafts, strict=True):
        text = (d.text or "").strip()
        if problem := (d.error if not d.ok else content_problem(text)):
            unusable.append({"scenario": scenario, "prompt": prompt, "reason": problem})
            continue
        cid = rf.chain_id(scenario, prompt, text, models, versions[scenario], settings, reward_model)
        chains.append(rf.Chain(chain_id=cid, scenario=scenario, prompt=prompt, draft=text))
    for u in unusable:
        context.log.warning(f"{u['scenario']}: no usable first draft for {u['prompt'][:30]!r}: {u['reason']}")
    recorded: dict[str, list[dict[str, Any]]] = {}
    if chains:
        for r in wh.sql("SELECT chain_id, round, draft, revision, accepted FROM reflections_latest "
                        "WHERE list_contains(?, chain_id)", [[c.chain_id for c in chains]]).to_dicts():
            recorded.setdefault(r["chain_id"], []).append(r)
    for c in chains:
        for r in sorted(recorded.get(c.chain_id, []), key=lambda r: r["round"]):  # continue after recorded rounds
            c.advance(r["round"], r["revision"], r["accepted"])
    if recorded:
        context.log.info(f"resuming {len(recorded)} chains after their recorded rounds")

    def refresh_memory() -> list[VectorIndexRow]:
        accepted = wh.sql("SELECT id, chain_id, scenario, prompt, critique, draft, revision, gain FROM reflections_latest "
                          "WHERE accepted").to_dicts()
        version = memory.rebuild(accepted)
        return [] if version is None else [VectorIndexRow(index_name=MEMORY_TABLE, lance_version=version,
                                                           uri=memory.store.uri, embedder=memory.embedder.model_id,
                                                           rows=memory.size)]

    index_rows = refresh_memory()
    written: list[Any] = []

    def on_round(r: int, events: list[rf.Round]) -> None:
        rows = [_row(e, versions[e.scenario], models, memory.version, reward_model) for e in events]
        wh.append(rows, run_id=context.run_id, asset_key=context.asset_key.to_user_string())
        written.extend(rows)
        index_rows[:] = refresh_memory()
        context.log.info(f"round {r}: {len(rows)} chains reflected, {sum(x.accepted for x in rows)} revisions "
                         f"accepted; {sum(not c.done for c in chains)} chains go on")

    rf.reflect(writer, critic, judge, chains, criteria_by, memory, settings, config.rounds, on_round=on_round,
               reward=reward)
    ids = [c.chain_id for c in chains]
    rows = wh.sql("SELECT * FROM reflections_latest WHERE list_contains(?, chain_id) ORDER BY chain_id, round",
                  [ids]).to_dicts() if ids else []
    summary = round_summary(rows)
    meta: dict[str, Any] = {
        "per_round": records_table(summary),
        "chains": len(chains), "unusable_first_drafts": len(unusable),
        "stop_reasons": dg.MetadataValue.json({c.chain_id[:12]: c.stop_reason for c in chains}),
        "memory_rows": memory.size, "writer_model": writer.model_id, "critic_model": critic.model_id,
        "judge_model": judge.model_id, "accept_by": config.accept_by, "reward_model": reward_model or "",
        **writer.stats.as_metadata(),
    }
    if summary:
        rounds = [s["round"] for s in summary]
        png = line_plot({"draft going in": (rounds, [s["draft_total"] for s in summary]),
                         "after the round": (rounds, [s["after_total"] for s in summary])},
                        xlabel="round", ylabel="criteria total (mean P(yes))")
        meta["criteria_total_by_round"] = dg.MetadataValue.md(markdown_image(png, "criteria total by round"))
    # the rounds are committed already; this snapshot adds the memory's index version (and nothing twice)
    return warehouse.record(context, [*written, *index_rows], main_table="reflections", metadata=meta)
