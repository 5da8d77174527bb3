"""The Judge and Reflect agents of Path A.

Judge: weighs both sides of the debate and labels the greeting 1 (good in every respect) or 0,
strictly. Reflect: audits the judgment with every input in view and gives the final label;
``changed`` is whether it overturned the judge (computed, not asked of the model).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.common import AGENT_SAMPLING, Item, Runtime, case_block
from agents.debate import format_points
from resources.llm.types import ChatRequest, ChatResult

PROMPT_VERSION = "judge-v1"
REFLECT_VERSION = "reflect-v1"


class JudgeVerdict(BaseModel):
    reason: str = Field(min_length=1, max_length=60, description="先写理由")
    label: Literal[0, 1]


class ReflectVerdict(BaseModel):
    audit: str = Field(min_length=1, max_length=40, description="复核时发现了什么")
    label: Literal[0, 1]
    reason: str = Field(min_length=1, max_length=60, description="最终结论的理由")


_JUDGE_SYSTEM = (
    "你是祝福语评审的裁判。你会看到用户需求、一条祝福语、同类优秀范例，以及正方列出的优点和反方列出的问题。"
    "请独立核对双方的证据，不要被条数多少左右。标准从严：只有当祝福语在语言、情感、创意、得体和契合需求"
    "各方面都没有明显问题时才判 1；只要存在一处实质性问题（套话堆砌、空泛、语气不当、禁忌、夹带请求、"
    "错误、明显不符合需求）就判 0。先写理由，再给标签，用JSON回答。"
)
_REFLECT_SYSTEM = (
    "你是复核员，负责检查裁判的判决是否站得住。请重新阅读全部材料：用户需求、祝福语、范例、正反双方意见和裁判的理由。"
    "检查裁判是否漏看了反方的有效证据、是否轻信了没有证据的优点、是否因为篇幅长短而偏心。"
    "如果判决正确就维持原标签，如果有误就改判，并说明最终理由。用JSON回答。"
)


def _debate_block(positive: list[dict] | None, negative: list[dict] | None) -> str:
    parts = []
    if positive is not None:
        parts.append(f"【正方：优点】\n{format_points(positive)}")
    if negative is not None:
        parts.append(f"【反方：问题】\n{format_points(negative)}")
    return "\n".join(parts) if parts else "（本次没有辩论意见）"


def judge_requests(items: list[Item], positive: list[list[dict] | None], negative: list[list[dict] | None],
                   *, use_exemplars: bool = True) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[{"role": "system", "content": _JUDGE_SYSTEM},
                      {"role": "user", "content": f"{case_block(it, use_exemplars)}\n{_debate_block(p, n)}"}],
            sampling=AGENT_SAMPLING,
            item=f"{it.item_id}:judge",
        )
        for it, p, n in zip(items, positive, negative, strict=True)
    ]


def reflect_requests(items: list[Item], positive: list[list[dict] | None], negative: list[list[dict] | None],
                     verdicts: list[dict | None], *, use_exemplars: bool = True) -> list[ChatRequest]:
    out = []
    for it, p, n, v in zip(items, positive, negative, verdicts, strict=True):
        judged = (f"【裁判判决】标签 {v['label']}；理由：{v['reason']}" if v else "【裁判判决】（裁判未能给出有效判决）")
        out.append(ChatRequest(
            messages=[{"role": "system", "content": _REFLECT_SYSTEM},
                      {"role": "user", "content": f"{case_block(it, use_exemplars)}\n{_debate_block(p, n)}\n{judged}"}],
            sampling=AGENT_SAMPLING,
            item=f"{it.item_id}:reflect",
        ))
    return out


def judge(runtime: Runtime, items: list[Item], positive: list[list[dict] | None],
          negative: list[list[dict] | None], *, use_exemplars: bool = True) -> list[ChatResult]:
    return runtime.structured(judge_requests(items, positive, negative, use_exemplars=use_exemplars), JudgeVerdict)


def reflect(runtime: Runtime, items: list[Item], positive: list[list[dict] | None], negative: list[list[dict] | None],
            verdicts: list[dict | None], *, use_exemplars: bool = True) -> list[ChatResult]:
    reqs = reflect_requests(items, positive, negative, verdicts, use_exemplars=use_exemplars)
    return runtime.structured(reqs, ReflectVerdict)
