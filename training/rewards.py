"""GRPO reward functions (TRL's ``reward_funcs`` signature: prompts, completions, **kwargs -> floats).

``JudgeReward``: Path B's principle-guided judge through the LLM runtime — batched, and cached in
the call log, so identical (prompt, completion) pairs across steps cost one call.
"""

from __future__ import annotations

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

    def __init__(self, runtime: Runtime, s_d: list[str], *, failed_reward: float = 0.0):
        self.runtime = runtime
        self.s_d = list(s_d)
        self.failed_reward = failed_reward

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        items = [(message_text(p), message_text(c)) for p, c in zip(prompts, completions, strict=True)]
        ps = principles.probabilities(principles.detect(self.runtime, items, self.s_d, tag="reward"))
        return [self.failed_reward if p is None else p for p in ps]


class RewardModelReward:
    """The trained reward model's score for each completion (batched, on the training device)."""

    __name__ = "reward_model"

    def __init__(self, path: str, *, batch_size: int = 64):
        from training.scoring import RewardScorer

        self.scorer = RewardScorer(path, batch_size=batch_size)

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        return self.scorer.score([message_text(p) for p in prompts], [message_text(c) for c in completions])


class RepetitionPenalty:
    """Minus the share of a completion's characters inside a repeated phrase (``repeated_share``):
    GRPO found that repeating a phrase the reward likes (如星辰般闪耀，如星辰般闪耀) pleases both the
    reward model and the judge, measured in bench/RESULTS.md; this term makes it cost."""

    __name__ = "repetition_penalty"

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        from training.metrics import repeated_share

        return [-repeated_share(message_text(c)) for c in completions]
