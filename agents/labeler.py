"""Path A's multi-agent labeller — the one implementation, used stage by stage by the assets
(``debate_arguments`` then ``verdicts``) and whole by ``labeler_agreement`` (with ablations).

retrieval -> Positive + Negative debate -> Judge (score with debate) -> Reflect (audit without it).
A debate side whose output failed to parse is ``None`` (shown as missing), in both uses alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents import debate, judge, judging
from agents.common import Item, Runtime
from resources.llm.types import ChatResult


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
class Scores:
    item_id: str
    judge: float | None
    audit: float | None
    final: float | None
    judge_result: ChatResult
    audit_result: ChatResult | None


def points(result: ChatResult | None) -> list[dict] | None:
    """A debate side's points, or None when that side failed (the same in the assets and here)."""
    return result.parsed["points"] if result is not None and result.ok and result.parsed else None


def argue(runtime: Runtime, items: Sequence[Item], side: str, *, use_exemplars: bool = True) -> list[ChatResult]:
    return debate.argue(runtime, list(items), side, use_exemplars=use_exemplars)  # type: ignore[arg-type]


def score(runtime: Runtime, items: Sequence[Item], positive: Sequence[list[dict] | None],
          negative: Sequence[list[dict] | None], ablation: Ablation = Ablation()) -> list[Scores]:
    """Judge and reflect scores given the debate (the ``verdicts`` stage)."""
    none: list[list[dict] | None] = [None] * len(items)
    j = judge.judge(runtime, items, positive if ablation.positive else none, negative if ablation.negative else none,
                    use_exemplars=ablation.retrieval)
    a = judge.audit(runtime, items) if ablation.reflect else [None] * len(items)
    out = []
    for it, jr, ar in zip(items, j, a, strict=True):
        jp, ap = judging.probability(jr), judging.probability(ar) if ar is not None else None
        final = judge.reflect_score(jp, ap) if ablation.reflect else jp
        out.append(Scores(it.item_id, jp, ap, final, jr, ar))
    return out


def debate_points(runtime: Runtime, items: Sequence[Item], *, positive: bool = True, negative: bool = True,
                  use_exemplars: bool = True) -> tuple[list[list[dict] | None], list[list[dict] | None]]:
    """Each side's points per item (``None`` for a side that failed or is left out); both sides in one batch."""
    none: list[list[dict] | None] = [None] * len(items)
    if positive and negative:
        pos, neg = debate.argue_both(runtime, list(items), use_exemplars=use_exemplars)
        return [points(r) for r in pos], [points(r) for r in neg]
    if positive:
        return [points(r) for r in argue(runtime, items, "positive", use_exemplars=use_exemplars)], none
    if negative:
        return none, [points(r) for r in argue(runtime, items, "negative", use_exemplars=use_exemplars)]
    return none, list(none)


def label(runtime: Runtime, items: Sequence[Item], ablation: Ablation = Ablation()) -> list[Scores]:
    """The whole labeller on ``items``: debate (unless ablated), then scores."""
    pos, neg = debate_points(runtime, items, positive=ablation.positive, negative=ablation.negative,
                             use_exemplars=ablation.retrieval)
    return score(runtime, items, pos, neg, ablation)
