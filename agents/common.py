"""Shared pieces of the agents: the items they judge and the runtime they talk to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from resources.llm.types import ChatRequest, ChatResult, Sampling


class Runtime(Protocol):
    """What agents need of the LLM runtime (resources.llm.LLMRuntime satisfies it)."""

    model_id: str

    def structured(self, requests: list[ChatRequest],
                   schema: type[BaseModel] | Sequence[type[BaseModel]]) -> list[ChatResult]: ...

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]: ...

    def score(self, requests: list[ChatRequest], labels: tuple[str, str] = ...) -> list[ChatResult]: ...


@dataclass(frozen=True)
class Item:
    """A greeting to judge: the user's request, the greeting, and retrieved exemplars."""

    item_id: str
    prompt: str
    response: str
    exemplars: tuple[str, ...] = field(default_factory=tuple)


# Greedy, so verdicts are reproducible. The schemas' length caps keep the largest answer inside the
# token budget (small models tend to fill a string to its cap), and keep CPU runs short.
AGENT_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=384, seed=0)


def exemplar_block(exemplars: tuple[str, ...], limit: int = 3) -> str:
    if not exemplars:
        return "（无参考范例）"
    return "\n".join(f"范例{i + 1}：{e}" for i, e in enumerate(exemplars[:limit]))


def case_block(item: Item, with_exemplars: bool = True) -> str:
    parts = [f"【用户需求】{item.prompt}", f"【待评祝福语】{item.response}"]
    if with_exemplars:
        parts.append(f"【同类优秀范例】\n{exemplar_block(item.exemplars)}")
    return "\n".join(parts)
