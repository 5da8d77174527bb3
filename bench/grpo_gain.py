"""Does SFT + GRPO write better greetings than SFT, beyond getting longer? (issue 11, on a GPU)

    python -m bench.grpo_gain --model /tmp/smollm2_hf --data $SEED_DATA --work /root/keep/gain \
        --stages sft rm evaluator judge grpo_rm grpo_judge eval

Stages (each skipped when its artifact is complete, so a long run spans several calls):
  sft        SFT on sft.json (one epoch)
  rm         the training reward model: Bradley–Terry (fast engine) on half A of reward_pairs_train
  evaluator  the independent evaluator: the same on half B (disjoint pairs)
  judge      the trained 是/否 judge on half A (pairwise term, two epochs, length-rule rows: --judge-variant)
  judge2     the same judge recipe on half A under seed 1: with --judge-ensemble, GRPO (judge)'s reward averages it
             with the judge's
  judge_b    the same judge recipe on half B: a second independent evaluator, of the judge's kind (the evaluator
             is a reward model, which shares the training RM's recipe and so favours GRPO (RM); eval reports both)
  grpo_rm    GRPO from SFT, reward = the training reward model
  grpo_judge GRPO from SFT, reward = the judge's P(是) under the initial S_D
  grpo_weighted  GRPO from SFT, reward = reward model + judge (each length-neutral, on one scale)
  memory     MRPO's reflection memory: --memory-prompts GRPO training prompts, SFT drafts, rounds of critique
             (the SFT model) and revision (SFT) scored by the judge against the initial S_D as criteria;
             the accepted revisions -> memory.jsonl (agents.reflection)
  grpo_mrpo_judge  MRPO: grpo_judge's recipe + memory replay of memory.jsonl and the group winners
             (--replay-weight; an optional cold start: --cold-start-steps, --cold-start-lr): MRPO against GRPO with the same reward and steps
  Rewards are shaped as training/grpo.py does by default (LengthNeutral: no within-prompt length
  trend, one scale; repetition penalty, its length trend removed too); ``--raw-rewards`` turns the
  shaping off (suffix ``_raw``). Defaults: 60 steps, lr 5e-6, β 0.04, rollouts at T 0.7;
  ``--tag T`` gives a variant's GRPO stages their own artifacts (grpo_rm_T, ...), so variants coexist.
  reflect_eval  MRPO's inference mode on the held-out test prompts (the first --eval-prompts): drafts (greedy)
             by --reflect-writer (SFT), --reflect-rounds rounds of critique and revision by the same model
             (--reflect-revisions sampled, the best kept), a revision kept only when the judge's criteria total rises
             (--reflect-accept-by: or the judge's overall P(是), both, or the training RM's length-neutral score);
             the independent evaluator scores the text after every round:
             gain over the draft and over the previous round ± SE, the part length explains, win rate; also
             every revision as written (kept or not), and how its gain by the acceptance test (criteria total,
             overall P(是)) agrees with its evaluator gain (r, sign). No memory (LanceDB is not on the GPU machine).
  eval       base, SFT and each GRPO policy in --work (every complete grpo_* artifact) write one greeting per held-out test prompt (greedy); the
             evaluator, the training RM and the judge score them; each policy against SFT prompt by
             prompt: gain ± SE, the part the length change explains, win rate (95% interval), on
             similar-length output pairs too; distinct-2 and the repeated-phrase rate.
The dev sets and grpo/test are never trained on.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.paper_data import pairs as read_pairs
from training import artifacts
from training.config import GRPORunConfig, JudgeRunConfig, RMRunConfig, SFTRunConfig
from training.data import write_jsonl
from training.paper_data import judge_rows
from training.reporting import Reporter
from training.rewards import message_text


def half(pair: dict) -> int:
    return int(hashlib.blake2b(pair["prompt"].encode() + pair["chosen"].encode(), digest_size=2).hexdigest(), 16) % 2


# what each stage reads from --work: a stage whose input is neither complete there nor built earlier in the same run
# (stages run in the order of main()) stops the run before anything trains, instead of failing at its load
NEEDS = {"memory": ("sft", "judge"), "grpo_rm": ("sft", "rm"), "grpo_judge": ("sft", "judge"),
         "grpo_weighted": ("sft", "rm", "judge"), "grpo_mrpo_judge": ("sft", "judge", "memory"),
         "reflect_eval": ("judge", "evaluator"), "eval": ("sft", "rm", "evaluator", "judge")}


# the judges that give GRPO its reward: --judge-init decides what they start from (judge_b, the evaluator's kind,
# stays on the base model so the referee is the same whatever the training judge started from)
JUDGES_FROM_INIT = ("judge", "judge2")


def missing_inputs(stages: list[str], work: Path, reflect_writer: str = "sft", judge_ensemble: bool = False,
                   judge_init: str = "base", reflect_accept_by: str = "criteria") -> list[str]:
    """``stage needs artifact`` for every input of ``stages`` that is neither in ``work`` nor among ``stages``
    (with ``judge_ensemble`` the judge-rewarded GRPO stages also read the second judge; with ``judge_init`` sft
    the training judges start from the SFT policy)."""
    def present(name: str) -> bool:  # the memory is a file, every other input an artifact directory
        return (work / "memory.jsonl").exists() if name == "memory" else artifacts.is_complete(work / name)

    out = []
    for stage in stages:
        needs = NEEDS.get(stage, ()) + ((reflect_writer,) if stage == "reflect_eval" else ()) \
            + (("rm",) if stage == "reflect_eval" and reflect_accept_by == "reward" else ()) \
            + (("judge2",) if judge_ensemble and stage in ("grpo_judge", "grpo_weighted") else ()) \
            + (("sft",) if judge_init == "sft" and stage in JUDGES_FROM_INIT else ())
        out += [f"{stage} needs {work / ('memory.jsonl' if n == 'memory' else n)}" for n in needs
                if n not in stages and not present(n)]
    return out


def prepare(data: Path, work: Path, judge_variant: str = "pairwise2_len") -> dict[str, Path]:
    import pyarrow.parquet as pq

    from bench.judge_gain import VARIANTS

    work.mkdir(parents=True, exist_ok=True)
    f = {k: work / f"{k}.jsonl" for k in ("sft", "pairs_a", "pairs_b", "judge", "judge_b", "grpo", "test", "labels",
                                           "dev")}
    marker = work / "judge_variant.txt"  # one work directory, one judge recipe: its artifacts depend on it
    if marker.exists() and marker.read_text().strip() != judge_variant:
        raise SystemExit(f"{work} holds a judge trained as {marker.read_text().strip()!r}, not {judge_variant!r}: "
                         "use another --work")
    if all(p.exists() for p in f.values()):
        return f
    write_jsonl(f["sft"], [{"prompt": r["instruction"] + (("\n" + r["input"]) if r.get("input") else ""),
                            "response": r["output"]} for r in json.loads((data / "sft.json").read_text("utf-8"))])
    train = read_pairs(data / "reward_pairs_train.json")
    a = [p for p in train if half(p) == 0]
    write_jsonl(f["pairs_a"], a)
    b = [p for p in train if half(p) == 1]
    write_jsonl(f["pairs_b"], b)
    v = VARIANTS[judge_variant]
    for name, pairs in (("judge", a), ("judge_b", b)):
        write_jsonl(f[name], judge_rows(pairs, rule_share=v.rule_share, rule_kind=v.rule_kind,
                                        degraded_share=v.degraded_share, matched_repeat=v.matched_repeat))
    marker.write_text(judge_variant)
    write_jsonl(f["grpo"], [{"prompt": message_text(r["prompt"])} for r in pq.read_table(data / "grpo/train.parquet").to_pylist()])
    write_jsonl(f["test"], [{"prompt": message_text(r["prompt"])} for r in pq.read_table(data / "grpo/test.parquet").to_pylist()])
    write_jsonl(f["dev"], read_pairs(data / "reward_pairs_dev.json"))
    from bench.paper_data import labels

    write_jsonl(f["labels"], labels(data / "evaluation_dev.jsonl"))
    return f


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.grpo_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True, help="artifacts directory (kept between calls)")
    p.add_argument("--stages", nargs="+",
                   default=["sft", "rm", "evaluator", "judge", "grpo_rm", "grpo_judge", "grpo_weighted", "eval"])
    p.add_argument("--grpo-steps", type=int, default=60)
    p.add_argument("--grpo-lr", type=float, default=5e-6)
    p.add_argument("--beta", type=float, default=0.04, help="KL coefficient (0.04: bench/RESULTS.md, issue 11)")
    p.add_argument("--repetition-weight", type=float, default=1.0)
    p.add_argument("--novelty-weight", type=float, default=0.0,
                   help="weight of the batch-novelty reward (training.rewards.BatchNovelty); 0 = off")
    p.add_argument("--tag", default="", help="suffix of this variant's GRPO artifacts (grpo_rm_<tag>, ...)")
    p.add_argument("--skip-base", action="store_true", help="eval: leave the base model out")
    p.add_argument("--temperature", type=float, default=0.7,
                   help="rollout sampling temperature (0.7: the repetition penalty then sees the repeats greedy "
                        "decoding makes; bench/RESULTS.md, issue 11)")
    p.add_argument("--seed", type=int, default=0, help="GRPO seed (rollout sampling, prompt order); reflect_eval: the revisions' sampling seeds")
    p.add_argument("--greedy-rollouts", type=int, default=0,
                   help="completions per group decoded greedily (GRPORunConfig.greedy_rollouts); 0 = all sampled")
    p.add_argument("--repetition-length-neutral", type=int, choices=(0, 1), default=1,
                   help="1: remove the repetition penalty's within-prompt length trend too "
                        "(GRPORunConfig.repetition_length_neutral)")
    p.add_argument("--raw-rewards", action="store_true",
                   help="GRPO on unshaped rewards (no length neutralisation, no common scale); stages get _raw")
    p.add_argument("--eval-prompts", type=int, default=256)
    p.add_argument("--judge-variant", default="pairwise2_len",
                   help="the judge's recipe, a bench.judge_gain variant (epochs, pairwise term, rule rows, degraded "
                        "negatives); one per --work")
    p.add_argument("--memory-prompts", type=int, default=256, help="memory: GRPO training prompts reflected on")
    p.add_argument("--memory-rounds", type=int, default=2)
    p.add_argument("--reflect-rounds", type=int, default=3, help="reflect_eval: rounds per held-out prompt")
    p.add_argument("--reflect-accept-by", choices=("criteria", "overall", "both", "reward"), default="criteria",
                   help="memory, reflect_eval: what must rise for a revision to be kept (agents.reflection.Settings)")
    p.add_argument("--reflect-revisions", type=int, default=1,
                   help="memory, reflect_eval: revisions sampled per chain and round, the best kept (Settings.revisions)")
    p.add_argument("--reflect-writer", default="sft",
                   help="reflect_eval: the artifact under --work that drafts, critiques and revises (sft, grpo_judge_T…)")
    p.add_argument("--cold-start-steps", type=int, default=0,
                   help="MRPO: SFT steps on the memory before GRPO (0: replay only, as the mrpo_policy asset)")
    p.add_argument("--cold-start-lr", type=float, default=1e-5)
    p.add_argument("--replay-weight", type=float, default=0.1)
    p.add_argument("--judge-ensemble", action="store_true",
                   help="grpo_judge, grpo_weighted: the judge reward is the mean of judge's and judge2's "
                        "(GRPORunConfig.judge_ensemble)")
    p.add_argument("--judge-init", choices=("base", "sft"), default="base",
                   help="judge, judge2 (the training rewards): fine-tune the base model or --work's SFT policy "
                        "(bench/RESULTS.md: 0.912 length-matched from SFT against ~0.89); one per --work")
    p.add_argument("--out")
    a = p.parse_args()
    from agents.principles import INITIAL_S_D
    from bench.judge_gain import VARIANTS
    from training import grpo, judge, rm, sft

    work = Path(a.work)
    if missing := missing_inputs(a.stages, work, a.reflect_writer, a.judge_ensemble, a.judge_init,
                                 a.reflect_accept_by):
        p.error("; ".join(missing) + " (add the stage that builds it to --stages, or run it first)")
    f = prepare(Path(a.data), work, a.judge_variant)
    r = Reporter()
    done = artifacts.is_complete
    if "sft" in a.stages and not done(work / "sft"):
        sft.train(SFTRunConfig(base_model=a.model, output_dir=str(work / "sft"), train_file=str(f["sft"]),
                               batch_size=32, num_epochs=1, learning_rate=5e-5, logging_steps=20), r)
    for stage, pairs_file in (("rm", f["pairs_a"]), ("evaluator", f["pairs_b"])):
        if stage in a.stages and not done(work / stage):
            rm.train(RMRunConfig(base_model=a.model, output_dir=str(work / stage), engine="fast", batch_size=256,
                                 learning_rate=1.6e-4, train_files=[str(pairs_file)], eval_pairs_file=str(f["dev"]),
                                 eval_labels_file=str(f["labels"]), logging_steps=20), r)
    jv = VARIANTS[a.judge_variant]
    for stage in ("judge", "judge2", "judge_b"):
        if stage in a.stages and not done(work / stage):
            init = str(work / "sft") if a.judge_init == "sft" and stage in JUDGES_FROM_INIT else a.model
            judge.train(JudgeRunConfig(base_model=init, output_dir=str(work / stage),
                                       train_file=str(f["judge" if stage == "judge2" else stage]),
                                       seed=1 if stage == "judge2" else 0,
                                       eval_labels_file=str(f["labels"]), eval_pairs_file=str(f["dev"]),
                                       eval_principles=list(INITIAL_S_D), principle_ablations=False,
                                       num_epochs=jv.epochs, pairwise_weight=jv.pairwise_weight,
                                       learning_rate=jv.learning_rate, logging_steps=50), r)
    if "memory" in a.stages and not (work / "memory.jsonl").exists():
        reflect_memory(a, work, f)
    suffix = ("_raw" if a.raw_rewards else "") + (f"_{a.tag}" if a.tag else "")
    for stage, reward in (("grpo_rm", "reward_model"), ("grpo_judge", "judge"), ("grpo_weighted", "weighted"),
                          ("grpo_mrpo_judge", "judge")):
        if stage in a.stages and not done(work / (stage + suffix)):
            mrpo = {"memory_file": str(work / "memory.jsonl"), "cold_start_steps": a.cold_start_steps,
                    "cold_start_lr": a.cold_start_lr, "replay_weight": a.replay_weight} if stage == "grpo_mrpo_judge" else {}
            m = grpo.train(GRPORunConfig(
                base_model=str(work / "sft"), output_dir=str(work / (stage + suffix)), prompts_file=str(f["grpo"]),
                reward=reward, reward_model=str(work / "rm"), judge_model=str(work / "judge"),
                judge_ensemble=[str(work / "judge2")] if a.judge_ensemble and stage != "grpo_rm" else [],
                judge_principles=list(INITIAL_S_D), max_steps=a.grpo_steps, batch_size=64, num_generations=4,
                max_completion_length=128, learning_rate=a.grpo_lr, beta=a.beta, logging_steps=5,
                repetition_weight=a.repetition_weight, novelty_weight=a.novelty_weight,
                repetition_length_neutral=bool(a.repetition_length_neutral), length_neutral=not a.raw_rewards, temperature=a.temperature,
                normalize_rewards=not a.raw_rewards, use_vllm=False, seed=a.seed, greedy_rollouts=a.greedy_rollouts,
                **mrpo), r)
            print(json.dumps({stage: {k: v for k, v in m.items() if k not in ("before", "after")}}, default=str))
    if "reflect_eval" in a.stages:
        reflect_evaluate(a, work, f)
    if "eval" in a.stages:
        evaluate(a, work, f)
    return 0


def _reflect(work: Path, prompts: list[str], rounds: int, accept_by: str = "criteria", revisions: int = 1,
             writer_dir: str = "sft", seed: int = 0) -> tuple[list, list]:
    """Drafts (greedy) for ``prompts`` by ``writer_dir``, then ``rounds`` rounds of reflection (critic and writer: the
    same model; criteria: the initial S_D scored by the judge; no memory); returns (chains, round events)."""
    from agents import criteria as crit
    from agents import policy
    from agents import reflection as rf
    from agents.principles import INITIAL_S_D
    from resources.llm.local import LocalBackend
    from resources.llm.runtime import LLMRuntime
    from resources.llm.types import ChatRequest, Sampling

    writer = LLMRuntime(LocalBackend(str(work / writer_dir), batch_size=64, progress=False))
    judge = LLMRuntime(LocalBackend(str(work / "judge"), batch_size=64, progress=False))
    settings = rf.Settings(accept_by=accept_by, revisions=revisions)
    reward = None
    if accept_by == "reward":  # the training reward model (half A), never the evaluator (half B)
        from training.scoring import RewardScorer

        reward = RewardScorer(str(work / "rm")).score
    # drafts get the revisions' budget: a cut-off draft is not a fair round 0
    draft = Sampling(temperature=0.0, max_new_tokens=settings.revision_tokens)
    drafts = writer.chat([ChatRequest(messages=policy.messages(p), sampling=draft) for p in prompts])
    # a revision's sampling seed derives from its chain id (resources.llm.types.request_seed): another seed, other ids
    chains = [rf.Chain(chain_id=f"m{i}" if not seed else f"s{seed}m{i}", scenario="greeting", prompt=p, draft=(d.text or "").strip())
              for i, (p, d) in enumerate(zip(prompts, drafts, strict=True)) if (d.text or "").strip()]
    criteria = {"greeting": crit.principles_as_criteria("greeting", INITIAL_S_D)}
    # reflect() advances the chains it is given: copies, so the caller keeps the first drafts
    return chains, rf.reflect(writer, writer, judge, [dataclasses.replace(c) for c in chains], criteria, rf.NoMemory(),
                              settings, rounds, reward=reward)


def reflect_memory(a, work: Path, f: dict[str, Path]) -> None:
    """The reflection memory on GRPO training prompts (never the test prompts): accepted revisions."""
    from training.data import read_jsonl

    prompts = [x["prompt"] for x in read_jsonl(f["grpo"], ("prompt",))][: a.memory_prompts]
    chains, rounds = _reflect(work, prompts, a.memory_rounds, a.reflect_accept_by, a.reflect_revisions)
    kept = [{"prompt": r.prompt, "response": r.revision} for r in rounds if r.accepted]
    write_jsonl(work / "memory.jsonl", kept)
    by_round = {}
    for r in rounds:
        by_round.setdefault(r.round, []).append(r)
    print(json.dumps({"memory": {"chains": len(chains), "accepted": len(kept), "per_round": {
        k: {"n": len(v), "accepted": sum(x.accepted for x in v),
            "critique_by_agent": sum(x.critique_source == "agent" for x in v),
            "mean_gain_accepted": (sum(x.gain for x in v if x.accepted) / max(1, sum(x.accepted for x in v)))}
        for k, v in by_round.items()}}}))


def agreement(test_gain: Sequence[float], evaluator_gain: Sequence[float]) -> dict[str, float]:
    """How a revision's gain by the acceptance test relates to its gain by the independent evaluator: Pearson r, and
    the share of revisions both call better or both call worse."""
    x, y = np.asarray(test_gain, dtype=float), np.asarray(evaluator_gain, dtype=float)
    r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
    return {"n": len(x), "pearson": r, "sign": float(np.mean((x > 0) == (y > 0)))}


def reflect_evaluate(a, work: Path, f: dict[str, Path]) -> None:
    """Inference-mode MRPO on held-out prompts, scored round by round by the independent evaluator."""
    from training.data import read_jsonl
    from training.metrics import mean_se, paired_comparison, repeat_rate
    from training.scoring import RewardScorer

    prompts = [x["prompt"] for x in read_jsonl(f["test"], ("prompt",))][: a.eval_prompts]
    chains, rounds = _reflect(work, prompts, a.reflect_rounds, a.reflect_accept_by, a.reflect_revisions,
                              a.reflect_writer, a.seed)
    ids = [c.chain_id for c in chains]
    ps = [c.prompt for c in chains]
    texts = [{c.chain_id: c.draft for c in chains}]  # the text after round r (kept revisions replace it)
    written: dict[int, dict[str, str]] = {}  # round -> chain -> its revision as written, kept or not
    for r in range(1, a.reflect_rounds + 1):
        now = dict(texts[-1])
        for e in rounds:
            if e.round == r and e.revision:
                written.setdefault(r, {})[e.chain_id] = e.revision
                if e.accepted:
                    now[e.chain_id] = e.revision
        texts.append(now)
    evaluator = RewardScorer(str(work / "evaluator"))
    score = [evaluator.score(ps, [t[i] for i in ids]) for t in texts]
    lens = [[len(t[i]) for i in ids] for t in texts]
    rows, out = [], {"n": len(ids), "accept_by": a.reflect_accept_by, "revisions": a.reflect_revisions,
                     "writer": a.reflect_writer, "rounds": []}
    for r, t in enumerate(texts):
        ev = [e for e in rounds if e.round == r]
        m, se = mean_se(score[r])
        row = {"round": r, "n": len(ids), "chars": round(sum(lens[r]) / len(ids), 1),
               "repeats": round(repeat_rate([t[i] for i in ids]) or 0, 3), "evaluator": f"{m:.3f}±{se:.3f}",
               "revised": sum(1 for e in ev if e.revision), "kept": sum(e.accepted for e in ev)}
        cmp = {}
        if r:
            for name, ref in (("vs draft", 0), ("vs previous round", r - 1)):
                c = paired_comparison(score[r], score[ref], lens[r], lens[ref])
                cmp[name] = c
                z = c["gain_beyond_length"] / c["gain_se"] if c["gain_se"] else None
                row[f"gain {name}"] = f"{c['gain']:+.3f}±{c['gain_se']:.3f}"
                row[f"beyond length {name} (SEs)"] = None if z is None else round(z, 1)
            done = [k for k, i in enumerate(ids) if i in written.get(r, {})]  # positions of the revised chains
            if done:  # every revision of this round as written, against the text it revised
                revised = [written[r][ids[k]] for k in done]
                raw = evaluator.score([ps[k] for k in done], revised)
                c = paired_comparison(raw, [score[r - 1][k] for k in done], [len(x) for x in revised],
                                      [lens[r - 1][k] for k in done])
                cmp["revisions as written"] = c
                row["revisions as written: gain"] = f"{c['gain']:+.3f}±{c['gain_se'] or 0:.3f}"
                row["revisions as written: win"] = round(c["win_rate"], 2)
                # does the test that keeps a revision agree with the evaluator? (the proxy a best-of-N search exploits)
                event = {e.chain_id: e for e in rounds if e.round == r}
                ev_gain = [raw[j] - score[r - 1][k] for j, k in enumerate(done)]
                for name, test in (("criteria", lambda e: e.gain), ("overall", lambda e: e.overall_gain),
                                   ("reward", lambda e: e.reward_gain)):
                    gains = [(test(event[ids[k]]), g) for k, g in zip(done, ev_gain, strict=True)]
                    pairs = [(t, g) for t, g in gains if t is not None]
                    if len(pairs) > 2:
                        agree = agreement(*zip(*pairs, strict=True))
                        cmp[f"{name} gain vs evaluator gain"] = agree
                        row[f"{name} ~ evaluator: r, sign agreement"] = f"{agree['pearson']:+.2f}, {agree['sign']:.2f}"
        rows.append(row)
        out["rounds"].append({**row, "comparisons": cmp})
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(json.dumps({"reflect_eval_samples": [{"prompt": ps[k], **{f"r{r}": texts[r][ids[k]] for r in range(len(texts))}}
                                               for k in range(min(3, len(ids)))]}, ensure_ascii=False))
    if a.out:
        Path(a.out).with_suffix(".reflect.json").write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str),
                                                            encoding="utf-8")


def evaluate(a, work: Path, f: dict[str, Path]) -> None:
    from agents import principles
    from resources.llm.local import LocalBackend
    from resources.llm.runtime import LLMRuntime
    from training.data import read_jsonl
    from training.generation import generate
    from training.metrics import distinct_n, mean_se, paired_comparison, repeat_rate
    from training.scoring import RewardScorer

    test = [x["prompt"] for x in read_jsonl(f["test"], ("prompt",))][: a.eval_prompts]
    policies = ([] if a.skip_base else [("base", a.model)]) + [("sft", str(work / "sft"))]
    grpo_dirs = sorted(d for d in work.glob("grpo_*") if d.is_dir() and artifacts.is_complete(d))
    policies += [(d.name, str(d)) for d in grpo_dirs]
    training = {}  # each GRPO policy's recipe and last logged training figures
    for d in grpo_dirs:
        man = artifacts.read_manifest(d)
        cfg, m = man.get("config", {}), man.get("metrics", {})
        training[d.name] = {**{k: cfg.get(k) for k in ("reward", "beta", "learning_rate", "max_steps", "temperature",
                                                        "repetition_weight", "novelty_weight", "judge_margin",
                                                        "length_neutral", "normalize_rewards", "seed",
                                                        "cold_start_steps", "cold_start_lr", "replay_weight",
                                                        "greedy_rollouts", "judge_ensemble")},
                            **{k: m.get(k) for k in ("repetition_length_neutral", "reward_first", "reward_last",
                                                     "kl_last", "completion_length_last",
                                                     "s_per_step", "device")}}
    outs = {name: generate(path, test, max_new_tokens=128, batch_size=64) for name, path in policies}
    scorers = {"evaluator": RewardScorer(str(work / "evaluator")), "train_rm": RewardScorer(str(work / "rm"))}
    judges = {k: LLMRuntime(LocalBackend(str(work / k), batch_size=64, progress=False))
              for k in ("judge", "judge_b") if artifacts.is_complete(work / k)}
    scores: dict[str, dict[str, list[float]]] = {}
    for name, o in outs.items():
        scores[name] = {k: s.score(test, o) for k, s in scorers.items()}
        for k, runtime in judges.items():
            ps = principles.probabilities(principles.detect(runtime, list(zip(test, o, strict=True)),
                                                            principles.INITIAL_S_D, tag=f"eval-{k}-{name}"))
            scores[name][k] = [0.0 if x is None else x for x in ps]
    rows, result = [], {}
    for name, o in outs.items():
        lens = [len(x) for x in o]
        row = {"policy": name, "n": len(o), "chars": round(sum(lens) / len(lens), 1),
               "distinct_2": round(distinct_n(o, 2) or 0, 4), "repeats": round(repeat_rate(o) or 0, 3)}
        for k, v in scores[name].items():
            m, se = mean_se(v)
            row[k] = f"{m:.3f}±{se:.3f}"
        if name in training:
            for k in ("evaluator", *judges):
                c = paired_comparison(scores[name][k], scores["sft"][k], lens, [len(x) for x in outs["sft"]])
                z = c["gain_beyond_length"] / c["gain_se"] if c["gain_se"] else None
                row[f"{k} gain vs sft"] = f"{c['gain']:.3f}±{c['gain_se']:.3f}"
                row[f"{k} beyond length (SEs)"] = None if z is None else round(z, 1)
                row[f"{k} win"] = f"{c['win_rate']:.2f} [{c['win_rate_ci'][0]:.2f},{c['win_rate_ci'][1]:.2f}]"
                row[f"{k} win sim.len (n)"] = (f"{c['win_rate_len_matched']:.2f} ({c['len_matched_n']})"
                                               if c["win_rate_len_matched"] is not None else "-")
                result[f"{name}/{k}"] = c
        rows.append(row)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    for name in outs:
        print(f"{name}: {outs[name][:3]}")
    if a.out:
        Path(a.out).write_text(json.dumps({"rows": rows, "comparisons": result, "training": training,
                                           "samples": {k: v[:10] for k, v in outs.items()},
                                           "outputs": outs, "prompts": test,  # to score them again later
                                           # per prompt, so any two policies can be compared afterwards
                                           "per_prompt": {k: {"chars": [len(x) for x in outs[k]], **scores[k]}
                                                          for k in outs}},
                                          ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
