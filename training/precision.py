"""bf16 weights with fp32 master copies: the forward and backward run in bf16 (half the memory
traffic of fp32 weights under autocast), while AdamW updates fp32 copies, so small updates are
not rounded away — the failure of training in plain bf16 weights (bench/RESULTS.md).

Under torchrun, ``shard=True`` keeps each parameter's fp32 copy and AdamW moments on one rank only
(ZeRO stage 1): every rank still holds the averaged bf16 gradients, each updates the parameters it
owns, and the owners broadcast the new bf16 weights. The same update as unsharded (AdamW is
per-parameter and every rank computes the same global clip), with the optimizer's 12 bytes a
parameter divided over the ranks — what lets a 7B reward model's optimizer state fit at all."""

from __future__ import annotations

import torch
import torch.distributed as dist

from training import distributed


class MasterWeights:
    def __init__(self, model: torch.nn.Module, lr: float, *, fused: bool, max_grad_norm: float = 1.0,
                 shard: bool = False):
        self.params = [p for p in model.parameters() if p.requires_grad]
        ranks = distributed.world_size() if shard and distributed.active() else 1
        self.sharded = ranks > 1
        self.owner = _balanced_owners([p.numel() for p in self.params], ranks)
        me = distributed.rank() if self.sharded else 0  # unsharded: every rank owns every parameter
        self.master = {i: p.detach().float().clone().requires_grad_(True)
                       for i, (p, o) in enumerate(zip(self.params, self.owner, strict=True)) if o == me}
        model.to(torch.bfloat16)  # in place: the same Parameter objects, now bf16
        self.optimizer = torch.optim.AdamW(list(self.master.values()), lr=lr, weight_decay=0.0, fused=fused)
        self.max_grad_norm = max_grad_norm

    def state_bytes(self) -> int:
        """This rank's fp32 master copies and AdamW moments, in bytes (the moments exist after the first step)."""
        moments = sum(t.numel() * t.element_size() for s in self.optimizer.state.values()
                      for t in s.values() if torch.is_tensor(t) and t.dim() > 0)
        return sum(m.numel() * 4 for m in self.master.values()) + moments

    def step(self) -> None:
        for i, m in self.master.items():
            g = self.params[i].grad
            m.grad = g.float() if g is not None else None
        if not self.sharded:
            torch.nn.utils.clip_grad_norm_(list(self.master.values()), self.max_grad_norm)
        else:  # the clip needs the norm over every gradient: each rank holds them all, so it is the same everywhere
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float32)))
            scale = torch.clamp(self.max_grad_norm / (norm + 1e-6), max=1.0)  # clip_grad_norm_'s coefficient
            torch._foreach_mul_([m.grad for m in self.master.values() if m.grad is not None], scale)
        for p in self.params:
            p.grad = None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_([self.params[i].data for i in self.master], list(self.master.values()))
        if self.sharded:  # each owner sends its parameters' new bf16 weights to the other ranks
            works = [dist.broadcast(p.data, src=o, async_op=True) for p, o in zip(self.params, self.owner, strict=True)]
            for w in works:
                w.wait()

    def load_into(self, model: torch.nn.Module) -> torch.nn.Module:
        """The final fp32 weights, for saving (sharded: gathered from their owners on every rank)."""
        model.float()
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if i in self.master:
                    p.data.copy_(self.master[i])
                if self.sharded:
                    dist.broadcast(p.data, src=self.owner[i])
        return model


def _balanced_owners(sizes: list[int], ranks: int) -> list[int]:
    """Each parameter's owning rank: largest first onto the least loaded rank (the same on every rank)."""
    load = [0] * ranks
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(ranks), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += sizes[i]
    return owner
