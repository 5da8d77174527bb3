"""The policy's prompt: how a candidate greeting is asked for."""

from __future__ import annotations

from resources.llm.types import ChatRequest, Sampling

PROMPT_VERSION = "policy-v1"

SYSTEM = "你是一位擅长写中文祝福语的写作者。请根据用户的需求，直接写出一条真诚、具体、有创意、得体的祝福语，不要解释。"


def messages(prompt: str) -> list[dict[str, str]]:
    """The chat used both to generate candidates and to train the policy (SFT/GRPO)."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def candidate_requests(prompt_id: str, prompt: str, *, k: int, temperature: float, top_p: float,
                       max_new_tokens: int, seed: int) -> list[ChatRequest]:
    """k samples of one prompt; sample i uses seed ``seed + i`` so each is its own cached call."""
    return [
        ChatRequest(messages=messages(prompt),
                    sampling=Sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                      seed=seed + i),
                    item=f"{prompt_id}#{i}")
        for i in range(k)
    ]
