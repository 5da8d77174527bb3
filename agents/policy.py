"""The policy's prompt: how a candidate greeting is asked for."""

from __future__ import annotations

from resources.llm.types import ChatRequest, Sampling, request_seed

PROMPT_VERSION = "policy-v2"


def messages(prompt: str) -> list[dict[str, str]]:
    """The chat used to generate candidates and to train, reward and evaluate the policy (SFT, reward
    models, GRPO, policy_evaluation all read it through ``training.data.user``): the request alone, as
    the paper's SFT data asks (instruction → greeting). v1 added a system prompt the trainers never
    saw, so a trained policy was asked one way and taught another; and its ~80 tokens made every
    CPU prefill ~2.5× longer."""
    return [{"role": "user", "content": prompt}]


def candidate_requests(prompt_id: str, prompt: str, *, k: int, temperature: float, top_p: float,
                       max_new_tokens: int, seed: int) -> list[ChatRequest]:
    """k samples of one prompt; sample i is seeded by (``seed + i``, the prompt's id): each is its own cached
    call, and no two prompts share a sample's noise (``request_seed``)."""
    return [
        ChatRequest(messages=messages(prompt),
                    sampling=Sampling(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                      seed=request_seed(seed + i, prompt_id)),
                    item=f"{prompt_id}#{i}")
        for i in range(k)
    ]
