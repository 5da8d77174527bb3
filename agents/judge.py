"""The Judge and Reflect agents of Path A, as scores.

Judge: the shared 是/否 judge (``agents.judging``) reads the principles below with the retrieved
exemplars and both sides of the debate as reference material; its score is P(是).
Reflect: the audit. It re-reads the greeting against the same principles *without* the debate —
catching a judge swayed by one side's rhetoric or by the number of points — and finalises the
score as the mean of the two readings. Labels come from thresholds calibrated on human labels
(``agents.judging.calibrate``); ``changed`` is whether reflect's label differs from the judge's.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents import judging
from agents.common import Item, Runtime, exemplar_block
from agents.debate import format_points
from resources.llm.types import ChatResult

PROMPT_VERSION = f"judge-v2-{judging.PROMPT_VERSION}"
REFLECT_VERSION = f"reflect-v2-{judging.PROMPT_VERSION}"

# What Path A's judge weighs (this project's own wording).
PRINCIPLES = [
    "紧扣用户需求里的场合、对象和细节，不写放之四海皆准的套话。",
    "情感真诚、分寸得当，语气与双方关系相称。",
    "有具体的画面、细节或巧思，而不是成语和吉祥话的堆砌。",
    "语言自然流畅，没有错别字、病句或生硬拼接。",
    "不触犯禁忌，不夹带请求、推销或负面内容。",
    "篇幅和风格符合要求；长而空泛同样不合格。",
]


def context(item: Item, positive: list[dict] | None, negative: list[dict] | None, *,
            use_exemplars: bool = True) -> str:
    parts = []
    if use_exemplars:
        parts.append(f"【同类优秀范例】\n{exemplar_block(item.exemplars)}")
    if positive is not None:
        parts.append(f"【正方：优点】\n{format_points(positive)}")
    if negative is not None:
        parts.append(f"【反方：问题】\n{format_points(negative)}")
    return "\n".join(parts)


def judge(runtime: Runtime, items: Sequence[Item], positive: Sequence[list[dict] | None],
          negative: Sequence[list[dict] | None], *, use_exemplars: bool = True) -> list[ChatResult]:
    ctx = [context(it, p, n, use_exemplars=use_exemplars) or None
           for it, p, n in zip(items, positive, negative, strict=True)]
    return judging.score(runtime, [(it.prompt, it.response) for it in items], PRINCIPLES, tag="judge", contexts=ctx)


def audit(runtime: Runtime, items: Sequence[Item]) -> list[ChatResult]:
    return judging.score(runtime, [(it.prompt, it.response) for it in items], PRINCIPLES, tag="reflect")


def reflect_score(judge_p: float | None, audit_p: float | None) -> float | None:
    """The final score: both readings when both exist, else whichever does."""
    known = [p for p in (judge_p, audit_p) if p is not None]
    return sum(known) / len(known) if known else None
