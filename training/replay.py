"""MRPO's memory replay for GRPO: earlier high-advantage trajectories as an extra likelihood term.

Which replay (the issue leaves it open): a buffer of token sequences — each step's group winners
(the best completion of a prompt's group, when its advantage is at least ``min_advantage``) and the
reflection memory's accepted revisions (``source = memory``, step −1) — from which every optimizer
step samples a few, *only from earlier steps*, and adds ``weight ×`` their mean token NLL to the GRPO
loss. That is self-imitation (Oh et al., 2018, "Self-Imitation Learning"): good past behaviour is
pulled back in without importance weights, whose ratios explode for sequences the current policy
has drifted away from. The buffer keeps the newest ``capacity`` entries (recent trajectories are
closest to the current policy). ``cold_start`` is the SFT phase on the memory before GRPO starts.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Trajectory:
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    step: int  # the optimizer step whose rollouts produced it; -1 for the memory
    advantage: float | None
    source: str  # rollout | memory


class ReplayBuffer:
    def __init__(self, capacity: int = 256, min_advantage: float = 0.5, seed: int = 0):
        self.items: deque[Trajectory] = deque(maxlen=capacity)
        self.min_advantage = min_advantage
        self.rng = random.Random(seed)
        self.added = {"rollout": 0, "memory": 0}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, t: Trajectory) -> None:
        self.items.append(t)
        self.added[t.source] += 1

    def add_group_winners(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                          completion_mask: torch.Tensor, advantages: torch.Tensor, group: int, step: int) -> int:
        """From one generation batch (rows grouped by prompt, ``group`` rows each, left-padded prompts,
        right-padded completions): each group's best completion whose advantage ≥ ``min_advantage``."""
        added = 0
        adv = advantages.detach().float().cpu()
        for g in range(0, len(adv) - group + 1, group):
            best = g + int(torch.argmax(adv[g : g + group]))
            a = float(adv[best])
            if not a >= self.min_advantage:  # NaN never qualifies
                continue
            p = prompt_ids[best][prompt_mask[best].bool()].tolist()
            c = completion_ids[best][completion_mask[best].bool()].tolist()
            if c:
                self.add(Trajectory(tuple(p), tuple(c), step, a, "rollout"))
                added += 1
        return added

    def sample(self, n: int, before_step: int) -> list[Trajectory]:
        """Up to ``n`` trajectories, uniformly, from steps strictly before ``before_step``."""
        pool = [t for t in self.items if t.step < before_step]
        return self.rng.sample(pool, min(n, len(pool))) if pool else []


def memory_trajectories(tokenizer, records: Sequence[dict], max_length: int = 256) -> list[Trajectory]:
    """The reflection memory's (prompt, response) records as trajectories, asked as the policy is asked."""
    from training.data import user

    out = []
    for r in records:
        p = tokenizer.apply_chat_template(user(r["prompt"]), add_generation_prompt=True, tokenize=True)
        p = p["input_ids"] if isinstance(p, dict) or hasattr(p, "input_ids") else p
        c = tokenizer.encode(r["response"], add_special_tokens=False) + [tokenizer.eos_token_id]
        out.append(Trajectory(tuple(p[-max_length:]), tuple(c[:max_length]), -1, None, "memory"))
    return out


def nll(model, batch: Sequence[Trajectory], pad_id: int) -> torch.Tensor:
    """Mean token negative log-likelihood of the completions given their prompts (right-padded batch)."""
    device = next(model.parameters()).device
    seqs = [list(t.prompt_ids) + list(t.completion_ids) for t in batch]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (t, s) in enumerate(zip(batch, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        labels[i, len(t.prompt_ids) : len(s)] = torch.tensor(t.completion_ids)
    ids, attn, labels = ids.to(device), attn.to(device), labels.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)


def cold_start(model, trajectories: Sequence[Trajectory], *, steps: int, batch_size: int, learning_rate: float,
               pad_id: int, seed: int = 0) -> list[float]:
    """SFT on ``trajectories`` (the memory's best revisions) for ``steps`` steps; returns the losses."""
    if not trajectories or steps <= 0:
        return []
    rng = random.Random(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        batch = rng.sample(list(trajectories), min(batch_size, len(trajectories)))
        loss = nll(model, batch, pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
