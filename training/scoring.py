"""Reward-model scores for (prompt, response) pairs: evaluation, GRPO rewards, policy evaluation.

The score is the value head at the last real token (from the attention mask), so it does not
depend on which token the tokenizer uses for padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training import devices
from training.data import assistant, user


def chat_texts(tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
    return [tokenizer.apply_chat_template([*user(p), *assistant(r)], tokenize=False)
            for p, r in zip(prompts, responses, strict=True)]


def last_token_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                       mask_attention: bool = True) -> torch.Tensor:
    """One scalar per row from a ``*ForSequenceClassification`` model, right padding.

    With right padding and causal attention no real token attends to the padding after it, so
    the mask can be left out (``mask_attention=False``): same rewards, and SDPA may take its
    flash kernel instead of building a 4-D mask."""
    hidden = model.base_model(input_ids=input_ids,
                              attention_mask=attention_mask if mask_attention else None).last_hidden_state
    last = attention_mask.sum(dim=1) - 1
    h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return model.score(h).squeeze(-1).float()


def load_for_scoring(path: str, model_class, device: str):
    """(tokenizer padding on the right, with a pad token; ``model_class`` from ``path`` on ``device``, eval mode)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model_class.from_pretrained(path, dtype=devices.dtype()).to(device).eval()


class RewardScorer:
    """Loads a reward-model artifact once; ``score(prompts, responses)`` in length-sorted batches."""

    def __init__(self, path: str, *, batch_size: int = 64, max_length: int = 384, device: str | None = None):
        from transformers import AutoModelForSequenceClassification

        self.device = device or devices.device()
        self.tokenizer, self.model = load_for_scoring(path, AutoModelForSequenceClassification, self.device)
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        texts = chat_texts(self.tokenizer, prompts, responses)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=False).to(self.device)
            for i, s in zip(idx, last_token_rewards(self.model, enc["input_ids"], enc["attention_mask"]).tolist(),
                            strict=True):
                out[i] = s
        return out
