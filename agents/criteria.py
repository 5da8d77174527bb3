"""Criteria as a score: a response against a scenario's criteria, one discriminating pass each.

For every criterion the judge reads the criterion, its description and its 1…5 rubric, and answers
whether the response reaches level 4 or better: the score is its probability of 是 rather than 否
(one forward pass, ``LLMRuntime.score``, as in ``agents.judging``). The total is the weighted mean
of the scored criteria. ``score_responses`` is the API the GRPO reward and MRPO's reflection
rounds call; criteria come from ``criteria_latest`` (``Criterion.from_row``) or anywhere else.
The prompt wording is this project's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.common import Runtime
from agents.scenarios import scenario_name
from resources.llm.types import ChatRequest, ChatResult, Sampling
from warehouse.ids import content_id

PROMPT_VERSION = "criterion-yesno-v2"
LABELS = ("是", "否")
SCORE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=1, seed=0)
PASS_LEVEL = 4

_SYSTEM = ("你是中文创意写作的评审员。每次只依据一条评分标准和它的评分细则（1到5分）给一件作品评分，"
           "不考虑标准以外的方面，也不要因为作品长就给高分。")
_QUESTION = f"按这条标准，这件作品能得到{PASS_LEVEL}分或以上吗？只回答“是”或“否”。"


@dataclass(frozen=True)
class Criterion:
    """One leaf of the hierarchy. ``key`` identifies it in scores (``criteria.id`` when stored)."""

    scenario: str
    dimension: str
    name: str
    description: str
    rubric: tuple[str, ...]
    weight: float
    key: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Criterion:
        return cls(scenario=row["task_type"], dimension=row["dimension"], name=row["criterion"],
                   description=row.get("description") or row["criterion"], rubric=tuple(row.get("rubric") or ()),
                   weight=float(row["weight"]), key=row.get("id") or "")

    def ident(self) -> str:
        return self.key or content_id("criterion", self.scenario, self.dimension, self.name)


@dataclass(frozen=True)
class CriteriaScore:
    """Per-criterion P(是) (None where the call failed) and the weighted total over the scored ones."""

    per_criterion: dict[str, float | None]
    total: float | None
    scored: int
    results: list[ChatResult] = field(default_factory=list, repr=False)


def rubric_block(c: Criterion) -> str:
    levels = "\n".join(f"{i + 1}分：{t}" for i, t in enumerate(c.rubric)) or "（无细则：按描述判断）"
    return f"【评分维度】{c.dimension}\n【评分标准】{c.name}：{c.description}\n【评分细则】\n{levels}"


def messages(c: Criterion, prompt: str, response: str) -> list[dict[str, str]]:
    # The criterion goes in the system message: the local backend runs a shared system message once
    # per batch, so each response costs only its own tokens.
    system = f"{_SYSTEM}\n【任务】{scenario_name(c.scenario)}\n{rubric_block(c)}"
    user = f"【写作要求】{prompt}\n【作品】{response}\n{_QUESTION}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def requests(items: Sequence[tuple[str, str]], criteria: Sequence[Criterion], tag: str = "criteria") -> list[ChatRequest]:
    """Item-major: item 0 × every criterion, then item 1 …"""
    return [ChatRequest(messages=messages(c, p, r), sampling=SCORE_SAMPLING, item=f"{tag}-{i}-{j}")
            for i, (p, r) in enumerate(items) for j, c in enumerate(criteria)]


def weighted_total(scores: Sequence[float | None], weights: Sequence[float]) -> float | None:
    pairs = [(s, w) for s, w in zip(scores, weights, strict=True) if s is not None and w > 0]
    den = sum(w for _, w in pairs)
    return sum(s * w for s, w in pairs) / den if den > 0 else None


def score_responses(runtime: Runtime, items: Sequence[tuple[str, str]], criteria: Sequence[Criterion], *,
                    tag: str = "criteria") -> list[CriteriaScore]:
    """Score (prompt, response) pairs against ``criteria``: one ``CriteriaScore`` per item."""
    if not criteria:
        raise ValueError("no criteria to score against")
    results = runtime.score(requests(items, criteria, tag), LABELS) if items else []
    out, n = [], len(criteria)
    for i in range(len(items)):
        chunk = results[i * n : (i + 1) * n]
        ps = [float(r.parsed["p"]) if r.ok and r.parsed else None for r in chunk]
        out.append(CriteriaScore(per_criterion={c.name: p for c, p in zip(criteria, ps, strict=True)},
                                 total=weighted_total(ps, [c.weight for c in criteria]),
                                 scored=sum(p is not None for p in ps), results=list(chunk)))
    return out


def principles_as_criteria(scenario: str, principles: Sequence[str]) -> list[Criterion]:
    """Hand-written principles (``agents.principles.INITIAL_S_D``) as equally weighted criteria with
    no rubric: the ablation "auto criteria vs hand-written principles" scores both the same way."""
    w = 1.0 / len(principles) if principles else 0.0
    return [Criterion(scenario=scenario, dimension="人工原则", name=f"原则{i + 1}", description=p, rubric=(), weight=w)
            for i, p in enumerate(principles)]
