"""Rejection sampling: preference pairs from labelled candidates of the same prompt."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

PairingPolicy = Literal["all", "best_vs_worst", "one_per_prompt"]


@dataclass(frozen=True)
class Labelled:
    candidate_id: str
    prompt_id: str
    text: str
    label: int
    score: float = 0.0  # tie-breaker within a label: the final P(是) of the verdict
    evidence_ids: tuple[str, ...] = field(default_factory=tuple)
    policy: str = ""  # the policy that wrote it: pairs never mix two policies' candidates


@dataclass(frozen=True)
class Pair:
    prompt_id: str
    chosen: Labelled
    rejected: Labelled


def make_pairs(candidates: list[Labelled], policy: PairingPolicy = "best_vs_worst", seed: int = 0) -> list[Pair]:
    """Chosen from label-1 candidates, rejected from label-0 ones, per prompt and policy; never a pair of
    equal texts."""
    if policy not in ("all", "best_vs_worst", "one_per_prompt"):
        raise ValueError(f"unknown pairing policy {policy!r}: all | best_vs_worst | one_per_prompt")
    by_prompt: dict[tuple[str, str], list[Labelled]] = {}
    for c in candidates:
        by_prompt.setdefault((c.prompt_id, c.policy), []).append(c)
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for prompt_id in sorted(by_prompt):
        group = sorted(by_prompt[prompt_id], key=lambda c: c.candidate_id)
        good = sorted((c for c in group if c.label == 1), key=lambda c: (-c.score, c.candidate_id))
        bad = sorted((c for c in group if c.label == 0), key=lambda c: (c.score, c.candidate_id))
        options = [Pair(prompt_id[0], g, b) for g in good for b in bad if g.text.strip() != b.text.strip()]
        if not options:
            continue
        if policy == "all":
            pairs.extend(options)
        elif policy == "best_vs_worst":
            pairs.append(options[0])
        elif policy == "one_per_prompt":
            pairs.append(rng.choice(options))
        else:
            raise ValueError(f"unknown pairing policy {policy!r}")
    return pairs
