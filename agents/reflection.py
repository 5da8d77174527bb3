"""MRPO's inference mode (Writer-R1): draft → criteria-based critique → revision, round after round,
with a memory of earlier successful revisions.

One round, for a batch of chains (one chain = one writing prompt and its current draft):
1. the draft is scored against the scenario's criteria (``agents.criteria.score_responses``: the
   judge's P(是) per criterion, one forward pass each, and the weighted total);
2. the critic model critiques it on its weakest criteria (lowest P(是)), with the criterion's
   description and its level-5 rubric in the prompt, and lessons from the memory; when its answer
   is not usable Chinese, the critique is written from the scores themselves (``source = scores``:
   "criterion X is weak; level 5 reads …"), so a weak model still gets a targeted instruction;
3. the writer (the policy) revises the draft following the critique (and one remembered draft → revision),
   ``Settings.revisions`` times with different seeds;
4. the revisions are scored the same way; the best by the acceptance score is the round's revision.
   It becomes the next round's draft only if its total is higher (``accepted``); the draft is never
   overwritten: every round is its own event.
   ``Settings.accept_by`` can ask for more: ``overall`` — the judge's P(是) for the draft and the
   revision with *all* the criteria in one prompt (``agents.judging``: the question the trained judge
   learned and GRPO's judge reward asks) — must rise instead, or ``both``; or ``reward`` — a reward model's
   score (the one GRPO (RM) trains with, never the evaluator that scores the rounds), with its length trend
   within the chain's draft and revisions taken out, so that a revision cannot win by being longer. Measured on a GPU, the
   per-criterion total alone let through revisions an independent evaluator scores far lower
   (bench/RESULTS.md, "Reflection rounds with drafts at the revisions' budget"). One revision a round
   from the 135M writer is worse than its draft on average and the rounds do not lift the text (same
   file, "Reflection rounds with one seed per request"): several revisions a round make it a search
   that the scores guide.
The memory holds accepted revisions (prompt, critique, draft → revision, gain) of earlier rounds and
runs, retrieved by prompt similarity within the scenario (``MemoryIndex``; LanceDB in the asset).
A chain stops early when every criterion is already at P(是) ≥ ``stop_at`` or the writer's revision
is unusable twice in a row. The prompts are this project's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agents import criteria as crit
from agents import judging
from agents.common import Runtime
from agents.scenarios import scenario_name
from agents.text_checks import content_problem
from resources.llm.types import ChatRequest, Sampling, request_seed
from training.metrics import repeated_share
from training.rewards import without_length_trend
from warehouse.ids import content_id

AGENT_VERSION = "reflect-v1"
WEAKEST = 2  # criteria a critique addresses


@dataclass(frozen=True)
class Settings:
    critique_tokens: int = 96
    revision_tokens: int = 128
    memory_k: int = 2  # lessons retrieved per chain and round (0 = no memory)
    stop_at: float = 0.9  # every criterion at least this P(是): nothing left to fix
    revision_temperature: float = 0.7
    accept_by: Literal["criteria", "overall", "both", "reward"] = "criteria"
    revisions: int = 1  # revisions sampled per chain and round; the best by the acceptance score is the round's

    def critique_sampling(self) -> Sampling:
        return Sampling(temperature=0.0, top_p=1.0, max_new_tokens=self.critique_tokens, seed=0)

    def revision_sampling(self, round_no: int, chain_id: str, k: int = 0) -> Sampling:
        # sampled: greedy decoding of a small policy tends to give back its draft word for word. Seeded by
        # chain, round and sample: one seed per round would repeat a rejected revision's noise in the next round,
        # and one seed for the whole batch made a round's revisions err together (request_seed)
        seed = request_seed(round_no, chain_id) if k == 0 else request_seed(round_no, chain_id, k)
        return Sampling(temperature=self.revision_temperature, top_p=0.95, max_new_tokens=self.revision_tokens,
                        seed=seed)


@dataclass(frozen=True)
class Lesson:
    """One remembered success: a critique and the revision that raised the criteria total."""

    memory_id: str
    prompt: str
    critique: str
    draft: str
    revision: str
    gain: float


class MemoryIndex(Protocol):
    def lessons(self, scenario: str, prompts: Sequence[str], k: int, own_chains: Sequence[str]) -> list[list[Lesson]]: ...


class NoMemory:
    def lessons(self, scenario: str, prompts: Sequence[str], k: int, own_chains: Sequence[str]) -> list[list[Lesson]]:
        return [[] for _ in prompts]


@dataclass
class Chain:
    """A prompt's reflection state: its current draft and how it got there."""

    chain_id: str
    scenario: str
    prompt: str
    draft: str
    next_round: int = 1
    unusable_in_a_row: int = 0
    done: bool = False
    stop_reason: str | None = None

    def advance(self, round_no: int, revision: str | None, accepted: bool) -> None:
        """After round ``round_no`` (run now, or read back from its recorded event on a resume): an accepted
        revision is the next draft; two unusable revisions in a row end the chain."""
        self.next_round = round_no + 1
        if accepted and revision:
            self.draft, self.unusable_in_a_row = revision, 0
        elif not revision:
            self.unusable_in_a_row += 1
            if self.unusable_in_a_row >= 2:
                self.done, self.stop_reason = True, "two unusable revisions in a row"


@dataclass
class Round:
    chain_id: str
    scenario: str
    round: int
    prompt: str
    draft: str
    draft_score: crit.CriteriaScore
    critique: str
    critique_source: str  # agent | scores
    critique_error: str | None
    weakest: list[str]
    revision: str | None
    revision_status: str  # ok | invalid | error
    revision_error: str | None
    revision_score: crit.CriteriaScore | None
    lessons: list[Lesson] = field(default_factory=list)
    llm_call_ids: list[str] = field(default_factory=list)
    accept_by: str = "criteria"
    draft_overall: float | None = None  # the judge's P(是) with every criterion in one prompt (accept_by != criteria)
    revision_overall: float | None = None
    revisions_sampled: int = 1  # the revision is the best of this many by the acceptance score
    # accept_by = reward: the reward model's score less its within-round length trend (``length_neutral_rewards``)
    draft_reward: float | None = None
    revision_reward: float | None = None

    @property
    def gain(self) -> float | None:
        if self.revision_score is None or self.revision_score.total is None or self.draft_score.total is None:
            return None
        return self.revision_score.total - self.draft_score.total

    @property
    def overall_gain(self) -> float | None:
        if self.revision_overall is None or self.draft_overall is None:
            return None
        return self.revision_overall - self.draft_overall

    @property
    def reward_gain(self) -> float | None:
        if self.revision_reward is None or self.draft_reward is None:
            return None
        return self.revision_reward - self.draft_reward

    @property
    def accepted(self) -> bool:
        if self.accept_by == "reward":
            return (self.reward_gain or 0.0) > 0
        by_criteria, by_overall = (self.gain or 0.0) > 0, (self.overall_gain or 0.0) > 0
        return {"criteria": by_criteria, "overall": by_overall, "both": by_criteria and by_overall}[self.accept_by]


def chain_id(scenario: str, prompt: str, first_draft: str, models: tuple[str, str, str], criteria_version: str,
             settings: Settings, reward_model: str | None = None) -> str:
    """``models``: (writer, critic, judge); ``reward_model``: what accepts revisions when ``accept_by = reward``."""
    named = dict(settings.__dict__)
    for name, before in (("accept_by", "criteria"), ("revisions", 1)):  # what chains had before the field
        if named.get(name) == before:  # existed: earlier chains keep their ids
            del named[name]
    if reward_model is not None:
        named["reward_model"] = reward_model
    return content_id("reflection-chain", AGENT_VERSION, scenario, prompt, first_draft, *models, criteria_version,
                      named)


def weakest(criteria: Sequence[crit.Criterion], score: crit.CriteriaScore, n: int = WEAKEST) -> list[tuple[crit.Criterion, float]]:
    scored = [(c, score.per_criterion.get(c.name)) for c in criteria]
    ranked = sorted(((c, p) for c, p in scored if p is not None), key=lambda cp: (cp[1], -cp[0].weight))
    return ranked[:n]


def _target(c: crit.Criterion) -> str:
    return c.rubric[-1] if c.rubric else c.description


def _lesson_block(lessons: Sequence[Lesson], with_texts: bool) -> str:
    if not lessons:
        return ""
    lines = ["【过去类似题目的成功修改】"]
    for i, m in enumerate(lessons, 1):
        lines.append(f"{i}. 题目：{m.prompt}；意见：{m.critique}")
        if with_texts:
            lines.append(f"   修改前：{m.draft}\n   修改后：{m.revision}")
    return "\n".join(lines) + "\n"


def critique_messages(scenario: str, prompt: str, draft: str, weak: Sequence[tuple[crit.Criterion, float]],
                      lessons: Sequence[Lesson]) -> list[dict[str, str]]:
    task = scenario_name(scenario)
    focus = "\n".join(f"- {c.name}（{c.description}）：目前得分偏低；满分的样子：{_target(c)}" for c, _ in weak)
    system = (f"你是严格而具体的{task}写作教练。请只针对给出的评分标准指出这篇{task}最需要改进的地方，"
              "并给出一条可以直接照做的修改建议。不要重写作品，不要客套，不超过60字。")
    user = (f"【写作要求】{prompt}\n【初稿】{draft}\n【最需要改进的标准】\n{focus}\n"
            f"{_lesson_block(lessons, with_texts=False)}请写出你的修改意见：")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def critique_from_scores(weak: Sequence[tuple[crit.Criterion, float]]) -> str:
    """The critique the scores themselves give: which criteria are weak and what level 5 asks."""
    return "；".join(f"「{c.name}」不足，应做到：{_target(c)}" for c, _ in weak) + "。"


def revision_messages(scenario: str, prompt: str, draft: str, critique: str,
                      lessons: Sequence[Lesson]) -> list[dict[str, str]]:
    task = scenario_name(scenario)
    system = (f"你是{task}作者。请按照修改意见改写初稿，保留初稿中好的部分，修正指出的问题。"
              f"只输出改写后的{task}正文，不要解释，不要加标题或引号。")
    user = (f"{_lesson_block(lessons[:1], with_texts=True)}【写作要求】{prompt}\n【初稿】{draft}\n"
            f"【修改意见】{critique}\n【改写后的{task}】")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_PREFIX = re.compile(r"^\s*(?:【?(?:改写后|修改后|改写|修改稿|正文|新版)[^】：:\n]{0,8}】?\s*[：:]?\s*)")


def clean_revision(text: str | None, draft: str, max_ratio: float = 3.0) -> tuple[str | None, str | None]:
    """(the revision, None) or (None, why it is unusable)."""
    t = _PREFIX.sub("", (text or "").strip()).split("\n\n")[0]
    t = t.strip().strip("“”\"'「」").strip()
    if problem := content_problem(t):
        return None, problem
    if t == draft.strip():
        return None, "the draft unchanged"
    if len(t) > max_ratio * max(len(draft), 20):
        return None, f"{len(t)} characters for a draft of {len(draft)}: not a revision"
    if repeated_share(t) > repeated_share(draft) + 0.2:  # 如春风般活力，如春风般活力… a judge may still like it
        return None, f"repeats itself more than the draft ({repeated_share(t):.2f}): {t[:20]!r}"
    return t, None


_ECHO_MARKERS = ("修改意见", "写作教练", "初稿", "评分", "【", "标准")


def critique_problem(text: str, draft: str = "", copied: int = 10) -> str | None:
    """Why a critique is not usable: not Chinese enough, a phrase of the prompt echoed back, the draft
    copied (``copied`` characters in a row), or a line said twice (what a small model writes when it
    cannot answer)."""
    if problem := content_problem(text, min_cjk=6):
        return problem
    if any(draft[i : i + copied] in text for i in range(len(draft) - copied + 1)):
        return f"copies the draft: {text[:20]!r}"
    if echoed := [m for m in _ECHO_MARKERS if m in text]:
        return f"echoes the prompt ({echoed[0]}): {text[:20]!r}"
    lines = [x.strip() for x in re.split(r"[\n。！!]", text) if x.strip()]
    if len(lines) != len(set(lines)):
        return f"repeats itself: {text[:20]!r}"
    return None


RewardFn = Callable[[Sequence[str], Sequence[str]], list[float]]  # (prompts, responses) -> scores


def length_neutral_rewards(raw: Sequence[float], lengths: Sequence[int], groups: Sequence[int]) -> list[float]:
    """``raw`` less its pooled within-group least-squares trend on length (a group: one chain's draft and its
    revisions), so a longer revision is not preferred for its length alone — the reward models learnt the
    paper's length bias (DESIGN.md); GRPO's rewards are shaped the same way (``training.rewards.LengthNeutral``)."""
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(str(g), []).append(i)
    return without_length_trend(list(raw), list(lengths), by)[0]


def _rank(cand: tuple[str, crit.CriteriaScore, float | None, float | None], accept_by: str) -> tuple[float, ...]:
    """How a chain's revisions of one round are ordered: by what their acceptance asks to rise."""
    _, score, over, reward = cand
    total = score.total if score.total is not None else float("-inf")
    over = over if over is not None else float("-inf")
    if accept_by == "reward":
        return (reward if reward is not None else float("-inf"), total)
    return (total,) if accept_by == "criteria" else (over, total)


def run_round(writer: Runtime, critic: Runtime, judge: Runtime, chains: Sequence[Chain], criteria: dict[str, list[crit.Criterion]],
              memory: MemoryIndex, settings: Settings, reward: RewardFn | None = None) -> list[Round]:
    """One round for every open chain (batched: one scoring call, one critique call, one revision call,
    one scoring call); updates each chain's draft and state in place, returns the round events. ``reward``
    is required with ``accept_by = reward``."""
    if settings.accept_by == "reward" and reward is None:
        raise ValueError("accept_by='reward' needs a reward function (a trained reward model)")
    live = [c for c in chains if not c.done]
    if not live:
        return []
    by_scenario: dict[str, list[Chain]] = {}
    for c in live:
        by_scenario.setdefault(c.scenario, []).append(c)
    rounds: list[Round] = []
    for scenario, group in by_scenario.items():
        cs = criteria[scenario]
        drafts = crit.score_responses(judge, [(c.prompt, c.draft) for c in group], cs, tag=f"reflect-draft-{scenario}")
        lessons = memory.lessons(scenario, [c.prompt for c in group], settings.memory_k, [c.chain_id for c in group])
        weak = [weakest(cs, s) for s in drafts]
        todo = [i for i, w in enumerate(weak) if w and min(p for _, p in w) < settings.stop_at]
        for i, c in enumerate(group):
            if i not in todo:
                c.done, c.stop_reason = True, "every criterion met" if weak[i] else "the draft could not be scored"
        if not todo:
            continue
        crit_res = critic.chat([ChatRequest(messages=critique_messages(scenario, group[i].prompt, group[i].draft,
                                                                       weak[i], lessons[i]),
                                            sampling=settings.critique_sampling(), item=f"critique-{group[i].chain_id}")
                                for i in todo])
        critiques: dict[int, tuple[str, str, str | None]] = {}
        for i, r in zip(todo, crit_res, strict=True):
            text = (r.text or "").strip()
            problem = r.error if not r.ok else critique_problem(text, group[i].draft)
            critiques[i] = (text, "agent", None) if problem is None else (critique_from_scores(weak[i]), "scores", problem)
        n = max(1, settings.revisions)
        rev_res = writer.chat([ChatRequest(messages=revision_messages(scenario, group[i].prompt, group[i].draft,
                                                                      critiques[i][0], lessons[i]),
                                           sampling=settings.revision_sampling(group[i].next_round, group[i].chain_id, k),
                                           item=f"revise-{group[i].chain_id}" + (f"-{k}" if k else ""))
                               for i in todo for k in range(n)])
        # every usable revision of every chain: (chain position, text); the first failure names why when none is
        samples: list[tuple[int, str]] = []
        failed: dict[int, tuple[str, str | None]] = {}
        for j, i in enumerate(todo):
            texts: list[str] = []
            for r in rev_res[j * n:(j + 1) * n]:
                text, problem = clean_revision(r.text, group[i].draft) if r.ok else (None, r.error)
                if text and text not in texts:
                    texts.append(text)
                elif not text:
                    failed.setdefault(i, ("invalid" if r.ok else r.status, problem))
            samples += [(i, t) for t in texts]
        totals = crit.score_responses(judge, [(group[i].prompt, t) for i, t in samples], cs, tag=f"reflect-revision-{scenario}")
        overall: dict[tuple[int, str], float | None] = {}
        # drafts and revisions of this round in one scoring call; the question is the greeting judge's
        # (agents.judging: the trained judge learned greetings), asked with the scenario's criteria as its principles
        if settings.accept_by in ("overall", "both"):
            items = [(i, None, group[i].draft) for i in todo] + [(i, t, t) for i, t in samples]
            res = judging.score(judge, [(group[i].prompt, t) for i, _, t in items], [c.description for c in cs],
                                tag=f"reflect-overall-{scenario}")
            overall = {(i, kind): judging.probability(r) for (i, kind, _), r in zip(items, res, strict=True)}
        rewards: dict[tuple[int, str | None], float] = {}
        if settings.accept_by == "reward" and reward is not None:
            items = [(i, None, group[i].draft) for i in todo] + [(i, t, t) for i, t in samples]
            raw = reward([group[i].prompt for i, _, _ in items], [t for _, _, t in items])
            adjusted = length_neutral_rewards(raw, [len(t) for _, _, t in items], [i for i, _, _ in items])
            rewards = {(i, kind): v for (i, kind, _), v in zip(items, adjusted, strict=True)}
        best: dict[int, tuple[str, crit.CriteriaScore, float | None, float | None]] = {}  # chain -> its best revision
        for (i, t), score in zip(samples, totals, strict=True):
            cand = (t, score, overall.get((i, t)), rewards.get((i, t)))
            if i not in best or _rank(cand, settings.accept_by) > _rank(best[i], settings.accept_by):
                best[i] = cand
        for j, i in enumerate(todo):
            c = group[i]
            text, score, over, rew = best.get(i, (None, None, None, None))
            status, error = ("ok", None) if text else failed[i]
            rd = Round(chain_id=c.chain_id, scenario=scenario, round=c.next_round, prompt=c.prompt, draft=c.draft,
                       draft_score=drafts[i], critique=critiques[i][0], critique_source=critiques[i][1],
                       critique_error=critiques[i][2], weakest=[x.name for x, _ in weak[i]],
                       revision=text, revision_status=status, revision_error=error, revision_score=score,
                       lessons=lessons[i], llm_call_ids=[crit_res[j].request_key]
                       + [r.request_key for r in rev_res[j * n:(j + 1) * n]], accept_by=settings.accept_by,
                       draft_overall=overall.get((i, None)), revision_overall=over, revisions_sampled=n,
                       draft_reward=rewards.get((i, None)), revision_reward=rew)
            rounds.append(rd)
            c.advance(rd.round, rd.revision, rd.accepted)
    return rounds


def reflect(writer: Runtime, critic: Runtime, judge: Runtime, chains: Sequence[Chain], criteria: dict[str, list[crit.Criterion]],
            memory: MemoryIndex, settings: Settings, rounds: int,
            on_round: Callable[[int, list[Round]], None] | None = None, reward: RewardFn | None = None) -> list[Round]:
    """Up to ``rounds`` rounds per chain (chains resumed at ``next_round``); ``on_round`` persists each
    round's events (and refreshes the memory) before the next starts."""
    out: list[Round] = []
    for r in range(1, rounds + 1):
        for c in chains:
            if not c.done and c.next_round > rounds:
                c.done, c.stop_reason = True, "rounds used"
        if all(c.done for c in chains):
            break
        events = run_round(writer, critic, judge, [c for c in chains if c.next_round <= rounds], criteria, memory, settings,
                           reward)
        out += events
        if on_round is not None:
            on_round(r, events)
    for c in chains:
        if not c.done:
            c.done, c.stop_reason = True, "rounds used"
    return out
