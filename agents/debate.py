"""The Positive and Negative agents: each argues one side of a candidate greeting.

Both see the request, the candidate and the retrieved exemplars, and answer with a list of
{dimension, point, evidence}: the dimension from a fixed list, the point in a sentence, and
the evidence quoted from the greeting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.common import AGENT_SAMPLING, Item, Runtime, case_block
from resources.llm.types import ChatRequest, ChatResult

PROMPT_VERSION = "debate-v2"

PositiveDimension = Literal["语言", "流畅", "情感", "创意", "具体", "得体", "积极措辞", "纯粹心意", "其他"]
NegativeDimension = Literal["陈词滥调", "空泛", "语气不当", "文化禁忌", "暗含请求", "错误", "不合需求", "其他"]


# Caps: two points of (24 + 16) characters fit the 384-token budget even at ~3.5 tokens per character
# (SmolLM2 spells rare characters in bytes). At 30 + 20, degenerate answers (看看看…) ran to 384 tokens
# and held their whole CPU batch for every decoding step (make demo, 2026-11-26).
class PositivePoint(BaseModel):
    dimension: PositiveDimension
    point: str = Field(min_length=1, max_length=24, description="一句话说明优点")
    evidence: str = Field(max_length=16, description="引用祝福语中的原文")


class NegativePoint(BaseModel):
    dimension: NegativeDimension
    point: str = Field(min_length=1, max_length=24, description="一句话说明问题")
    evidence: str = Field(max_length=16, description="引用祝福语中的原文")


class PositiveArguments(BaseModel):
    points: list[PositivePoint] = Field(min_length=1, max_length=2)


class NegativeArguments(BaseModel):
    points: list[NegativePoint] = Field(min_length=1, max_length=2)


_POSITIVE_SYSTEM = (
    "你是祝福语评审会上的“正方”。你的任务是为一条祝福语找出真正的长处，供裁判参考。"
    "只从这些维度里挑：语言、流畅、情感、创意、具体、得体、积极措辞、纯粹心意、其他。"
    "每个优点都要引用祝福语里的原文作证据；没有证据的优点不要写。"
    "可以对照同类优秀范例，说明它在哪些方面达到了范例的水平。最多写2条，用JSON回答。"
)
_NEGATIVE_SYSTEM = (
    "你是祝福语评审会上的“反方”。你的任务是挑出这条祝福语的毛病，供裁判参考。"
    "重点检查：陈词滥调的堆砌、空泛没有具体内容、语气或称呼与对象不符、文化禁忌（如不吉利的谐音）、"
    "夹带推销或请求、错别字病句、不符合用户要求的长度或风格。"
    "每个问题都要引用原文作证据；确实挑不出问题时，写一条“其他”，说明为何找不到明显缺点。"
    "可以对照同类优秀范例指出差距。最多写2条，用JSON回答。"
)

SCHEMAS: dict[str, type[BaseModel]] = {"positive": PositiveArguments, "negative": NegativeArguments}
_SYSTEMS = {"positive": _POSITIVE_SYSTEM, "negative": _NEGATIVE_SYSTEM}


def requests(items: list[Item], side: Literal["positive", "negative"], *, use_exemplars: bool = True) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[{"role": "system", "content": _SYSTEMS[side]},
                      {"role": "user", "content": case_block(it, use_exemplars)}],
            sampling=AGENT_SAMPLING,
            item=f"{it.item_id}:{side}",
        )
        for it in items
    ]


def argue(runtime: Runtime, items: list[Item], side: Literal["positive", "negative"], *,
          use_exemplars: bool = True) -> list[ChatResult]:
    """One structured answer per item; ``.parsed`` = {"points": [...]} when ``.ok``."""
    return runtime.structured(requests(items, side, use_exemplars=use_exemplars), SCHEMAS[side])


def argue_both(runtime: Runtime, items: list[Item], *, use_exemplars: bool = True) -> tuple[list[ChatResult], list[ChatResult]]:
    """Both sides for every item in one batched call (positive results, negative results): on a CPU
    the two sides' decoding steps then run together instead of one after the other."""
    reqs = requests(items, "positive", use_exemplars=use_exemplars) + requests(items, "negative", use_exemplars=use_exemplars)
    out = runtime.structured(reqs, [PositiveArguments] * len(items) + [NegativeArguments] * len(items))
    return out[: len(items)], out[len(items):]


def format_points(points: list[dict] | None) -> str:
    if not points:
        return "（无）"
    return "\n".join(f"- [{p['dimension']}] {p['point']}（证据：{p.get('evidence') or '无'}）" for p in points)
