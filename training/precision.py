"""bf16 weights with fp32 master copies: the forward and backward run in bf16 (half the memory
traffic of fp32 weights under autocast), while AdamW updates fp32 copies, so small updates are
not rounded away — the failure of training in plain bf16 weights (bench/RESULTS.md)."""

from __future__ import annotations

import torch


class MasterWeights:
    def __init__(self, model: torch.nn.Module, lr: float, *, fused: bool, max_grad_norm: float = 1.0):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.master = [p.detach().float().clone().requires_grad_(True) for p in self.params]
        model.to(torch.bfloat16)  # in place: the same Parameter objects, now bf16
        self.optimizer = torch.optim.AdamW(self.master, lr=lr, weight_decay=0.0, fused=fused)
        self.max_grad_norm = max_grad_norm

    def step(self) -> None:
        for m, p in zip(self.master, self.params, strict=True):
            m.grad = p.grad.float() if p.grad is not None else None
            p.grad = None
        torch.nn.utils.clip_grad_norm_(self.master, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.params], self.master)

    def load_into(self, model: torch.nn.Module) -> torch.nn.Module:
        """The final fp32 weights, for saving."""
        model.float()
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.params], self.master)
        return model
