"""The whole multi-agent labeller of Path A in one call, with ablations.

retrieval -> Positive + Negative debate -> Judge -> Reflect. Used on the human-labelled set to
measure agreement (``labeler_agreement``); the asset graph runs the same stages one asset each.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import debate, judge
from agents.common import Item, Runtime


@dataclass(frozen=True)
class Ablation:
    name: str = "full"
    positive: bool = True
    negative: bool = True
    reflect: bool = True
    retrieval: bool = True


ABLATIONS = (
    Ablation("full"),
    Ablation("no_positive", positive=False),
    Ablation("no_negative", negative=False),
    Ablation("no_reflect", reflect=False),
    Ablation("no_retrieval", retrieval=False),
)


@dataclass(frozen=True)
class Outcome:
    item_id: str
    judge_label: int | None
    final_label: int | None
    judge_reason: str | None
    final_reason: str | None


def _points(results) -> list[list[dict] | None]:
    return [r.parsed["points"] if r.ok and r.parsed else [] for r in results]


def label(runtime: Runtime, items: list[Item], ablation: Ablation = Ablation()) -> list[Outcome]:
    """Labels for ``items``; a stage whose output failed to parse yields ``None`` labels."""
    ex = ablation.retrieval
    none: list[list[dict] | None] = [None] * len(items)
    pos = _points(debate.argue(runtime, items, "positive", use_exemplars=ex)) if ablation.positive else none
    neg = _points(debate.argue(runtime, items, "negative", use_exemplars=ex)) if ablation.negative else none
    j = judge.judge(runtime, items, pos, neg, use_exemplars=ex)
    jv = [r.parsed if r.ok else None for r in j]
    if ablation.reflect:
        r = judge.reflect(runtime, items, pos, neg, jv, use_exemplars=ex)
        fv = [x.parsed if x.ok else None for x in r]
    else:
        fv = jv
    return [
        Outcome(item_id=it.item_id,
                judge_label=a["label"] if a else None, final_label=b["label"] if b else None,
                judge_reason=a["reason"] if a else None, final_reason=b["reason"] if b else None)
        for it, a, b in zip(items, jv, fv, strict=True)
    ]
