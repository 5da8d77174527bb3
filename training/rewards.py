"""GRPO reward functions (TRL's ``reward_funcs`` signature: prompts, completions, **kwargs -> floats).

``JudgeReward``: Path B's principle-guided judge through the LLM runtime — batched, and cached in
the call log, so identical (prompt, completion) pairs across steps cost one call.
``CriteriaReward``: Writer-R1's weighted criteria total (``agents.criteria``), the same way.
``BatchNovelty`` pays for bigrams the batch's other prompts' completions do not use (diversity).
``LengthNeutral`` wraps any of them so that GRPO cannot buy reward with length, and so that rewards
of different units (reward-model logits, P(是)) add up with weights that mean the same thing.
"""

from __future__ import annotations

import math
from typing import Any

from agents import principles
from agents.common import Runtime


def message_text(x: Any) -> str:
    """A prompt or completion as plain text: TRL passes strings or chat message lists."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict):
        users = [m["content"] for m in x if m.get("role") == "user"]
        return users[-1] if users else x[-1].get("content", "")
    return str(x)


class JudgeReward:
    """The judge's P(是) for each completion under principles ``s_d`` — a continuous reward, so two
    completions the judge would both pass still get different rewards (``failed_reward`` when the
    call failed)."""

    __name__ = "judge_reward"  # TRL logs rewards under the function's name

    def __init__(self, runtime: Runtime, s_d: list[str], *, failed_reward: float = 0.0, margin: bool = False,
                 name: str = "judge_reward"):
        self.__name__ = name  # an ensemble's members log apart
        self.runtime = runtime
        self.s_d = list(s_d)
        self.failed_reward = failed_reward
        self.margin = margin

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        items = [(message_text(p), message_text(c)) for p, c in zip(prompts, completions, strict=True)]
        ps = principles.probabilities(principles.detect(self.runtime, items, self.s_d, tag="reward"))
        if self.margin:  # log P(是)/P(否): still ranks greetings that all score P(是) ≈ 1
            return [self.failed_reward if p is None else _logit(p) for p in ps]
        return [self.failed_reward if p is None else p for p in ps]


class CriteriaReward:
    """Writer-R1's reward: the weighted criteria total of each completion (``agents.criteria``: per
    criterion the judge's P(是) for "reaches level 4 of the rubric", weighted mean over the criteria),
    ``failed_reward`` when no criterion could be scored. ``criteria`` are ``agents.criteria.Criterion``s
    or ``criteria_latest`` rows (dicts) of one scenario. Batched and cached like ``JudgeReward``."""

    __name__ = "criteria_reward"

    def __init__(self, runtime: Runtime, criteria: list[Any], *, failed_reward: float = 0.0):
        from agents.criteria import Criterion

        self.runtime = runtime
        self.criteria = [c if isinstance(c, Criterion) else Criterion.from_row(c) for c in criteria]
        if not self.criteria:
            raise ValueError("the criteria reward needs at least one criterion (materialize criteria)")
        self.failed_reward = failed_reward
        self.last_per_criterion: list[dict[str, float | None]] = []

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        from agents.criteria import score_responses

        items = [(message_text(p), message_text(c)) for p, c in zip(prompts, completions, strict=True)]
        scores = score_responses(self.runtime, items, self.criteria, tag="reward")
        self.last_per_criterion = [s.per_criterion for s in scores]
        return [self.failed_reward if s.total is None else s.total for s in scores]


def _logit(p: float, eps: float = 1e-6) -> float:
    p = min(1 - eps, max(eps, p))
    return math.log(p / (1 - p))


class RewardModelReward:
    """The trained reward model's score for each completion (batched, on the training device)."""

    __name__ = "reward_model"

    def __init__(self, path: str, *, batch_size: int = 64):
        from training.scoring import RewardScorer

        self.scorer = RewardScorer(path, batch_size=batch_size)

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        return self.scorer.score([message_text(p) for p in prompts], [message_text(c) for c in completions])


class RepetitionPenalty:
    """Minus (1 for any repeated phrase + the share of characters inside repeated phrases,
    ``repeated_share``): GRPO found that repeating a phrase the reward likes (如星辰般闪耀，如星辰般闪耀)
    pleases both the reward model and the judge (bench/RESULTS.md). The share alone cost a typical
    repeat (8 of 60 characters) 0.13 — too little against a reward model's spread — hence the fixed part (in
    ``LengthNeutral``'s units, one typical within-prompt reward difference).

    "Repeats a phrase" is the union of what ``repeated_share`` counts and what the evaluation's
    ``training.metrics.repeat_rate`` counts (their punctuation sets differ: a repeated 4-character
    phrase with a newline, colon or quote in it counts for the metric), so every completion the metric
    would call repetitive pays the fixed part."""

    __name__ = "repetition_penalty"

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        from training.metrics import repeat_rate, repeated_share

        texts = [message_text(c) for c in completions]
        shares = [repeated_share(t) for t in texts]
        return [-(1.0 + s) if s > 0 or repeat_rate([t]) else 0.0 for s, t in zip(shares, texts, strict=True)]


class BatchNovelty:
    """The share of a completion's distinct character bigrams that no completion of *another* prompt in
    the batch uses. GRPO on a reward model converged on stock phrases shared across prompts (corpus
    distinct-2 0.049–0.051 against SFT's 0.054–0.057, bench/RESULTS.md); within a group, this pays the
    rollout that says something other prompts' rollouts do not. The same prompt's other rollouts are
    not counted against it (they are its GRPO baseline, not its competition for diversity). Bigrams as
    ``training.metrics.distinct_n`` counts them; a completion without one scores 0. Meant to be wrapped
    in ``LengthNeutral`` like the other rewards (a longer completion has more, and more common, bigrams)."""

    __name__ = "batch_novelty"

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        keys = [message_text(p) for p in prompts]
        grams = [_bigrams(message_text(c)) for c in completions]
        by_prompt: dict[str, dict[str, int]] = {}  # bigram -> number of the prompt's completions using it
        total: dict[str, int] = {}
        for k, g in zip(keys, grams, strict=True):
            own = by_prompt.setdefault(k, {})
            for b in g:
                own[b] = own.get(b, 0) + 1
                total[b] = total.get(b, 0) + 1
        out = []
        for k, g in zip(keys, grams, strict=True):
            own = by_prompt[k]
            out.append(sum(total[b] == own[b] for b in g) / len(g) if g else 0.0)
        return out


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _groups(prompts: list[Any]) -> dict[str, list[int]]:
    """Completion indices per prompt (GRPO's groups: the same prompt's rollouts)."""
    out: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        out.setdefault(message_text(p), []).append(i)
    return out


def within_group_slope(values: list[float], lengths: list[int], groups: dict[str, list[int]]) -> float:
    """Pooled within-prompt least-squares slope of ``values`` on ``lengths``: the reward a completion
    gains per extra character compared with its own group — exactly what GRPO's advantage sees."""
    sxy = sxx = 0.0
    for idx in groups.values():
        ml = sum(lengths[i] for i in idx) / len(idx)
        mv = sum(values[i] for i in idx) / len(idx)
        sxy += sum((lengths[i] - ml) * (values[i] - mv) for i in idx)
        sxx += sum((lengths[i] - ml) ** 2 for i in idx)
    return sxy / sxx if sxx > 0 else 0.0


def without_length_trend(values: list[float], lengths: list[int],
                         groups: dict[str, list[int]]) -> tuple[list[float], float]:
    """``values − slope · (length − group mean length)`` with the pooled within-group slope; and the slope."""
    slope = within_group_slope(values, lengths, groups)
    means = {i: sum(lengths[j] for j in idx) / len(idx) for idx in groups.values() for i in idx}
    return [v - slope * (n - means[i]) for i, (v, n) in enumerate(zip(values, lengths, strict=True))], slope


def within_group_std(values: list[float], groups: dict[str, list[int]]) -> float:
    n = sum(len(idx) for idx in groups.values())
    ss = sum((values[i] - sum(values[j] for j in idx) / len(idx)) ** 2 for idx in groups.values() for i in idx)
    return (ss / max(1, n - len(groups))) ** 0.5


class LengthNeutral:
    """A reward with its within-prompt length trend removed and put on a common scale.

    - *length*: in every batch, ``reward − slope · (length − group mean length)`` where ``slope`` is
      the pooled within-prompt regression of the reward on completion length. A reward model that
      pays for length (DESIGN.md's length bias) then gives GRPO no gradient towards longer output;
      measured in bench/RESULTS.md, GRPO on the raw reward model mostly bought length and repeats.
    - *scale*: divided by the within-prompt standard deviation of the first batch's rewards (fixed
      afterwards, so the logged reward curve still shows learning), so a weight of 1 means "one
      typical within-group difference" for a reward model's logits and a judge's P(是) alike.
    """

    def __init__(self, func: Any, *, length: bool = True, scale: bool = True):
        self.func = func
        self.__name__ = getattr(func, "__name__", type(func).__name__)
        self.length, self.scale = length, scale
        self.unit: float | None = None
        self.last_slope = 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        raw = [float(x) for x in self.func(prompts, completions, **kwargs)]
        groups = _groups(prompts)
        lengths = [len(message_text(c)) for c in completions]
        out = list(raw)
        if self.length:
            out, self.last_slope = without_length_trend(raw, lengths, groups)
        if self.scale:
            if self.unit is None and any(len(idx) > 1 for idx in groups.values()):
                sd = within_group_std(raw, groups)
                self.unit = sd if sd > 1e-6 else 1.0
            out = [r / (self.unit or 1.0) for r in out]
        return out
