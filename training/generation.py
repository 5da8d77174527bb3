"""Greedy generation for evaluation: a policy's greetings for held-out prompts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training import devices
from training.data import user


@torch.no_grad()
def generate(model_path: str, prompts: Sequence[str], *, max_new_tokens: int = 96, batch_size: int = 32,
             model=None, tokenizer=None, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None) -> list[str]:
    """Greedy by default (evaluation); ``temperature`` > 0 samples (seeded once, before the first batch)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = tokenizer or AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    owned = model is None
    if owned:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=devices.dtype()).to(devices.device())
    was_training = model.training
    model.eval()
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    if temperature > 0 and seed is not None:
        torch.manual_seed(seed)
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        chats = [user(p) for p in prompts[i:i + batch_size]]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, return_tensors="pt", padding=True,
                                      return_dict=True).to(model.device)
        g = model.generate(**enc, max_new_tokens=max_new_tokens, **sampling, pad_token_id=tok.pad_token_id)
        out += [t.strip() for t in tok.batch_decode(g[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    if was_training:
        model.train()
    return out
