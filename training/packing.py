"""Padding-free, prefix-shared batches for the reward model's Bradley–Terry loss.

A pair's chosen and rejected texts share their chat prompt (the system prompt, the user's
request, the assistant header): about 50 of the ~290 tokens of a pair in the paper's data, and
with length buckets the shorter response is also padded to the longer one. Here every batch is
one row of real tokens, laid out as::

    [S1 C1  S2 C2  …  Sn Cn | R1 R2 … Rn]

S = the shared prefix (the longest common token prefix of the two sequences), C = the rest of
the chosen sequence, R = the rest of the rejected one. Attention runs twice per layer on
variable-length segments: the S+C segments causally among themselves, then each R segment's
queries against the keys of its own S and R (causal, aligned at the end). Each token sees
exactly what it would see in its own padded row, so the rewards equal those of the padded
forward (``tests/test_training_library.py`` checks it) while the batch holds no padding and
the prompt is computed once per pair.

The attention runs through a function registered with transformers' ``AttentionInterface``:
flash-attention varlen kernels on CUDA (``torch.nn.attention.varlen``), a per-segment SDPA loop
elsewhere (for tests on CPU).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ATTN_NAME = "zhufu_pair_packed"


@dataclass
class PackedPairs:
    input_ids: torch.Tensor  # [T]
    position_ids: torch.Tensor  # [T]
    n_first: int  # tokens of the S+C part; the R part follows
    cu_first: torch.Tensor  # int32 [n+1]: S+C segment boundaries within the first part
    max_first: int
    cu_rej_q: torch.Tensor  # int32 [n+1]: R segment boundaries within the R part
    max_rej_q: int
    rej_kv_index: torch.Tensor  # long: for each R segment, the token indices of its S then its R
    cu_rej_k: torch.Tensor  # int32 [n+1]
    max_rej_k: int
    chosen_last: torch.Tensor  # long [n]: index of each chosen sequence's last token
    rejected_last: torch.Tensor  # long [n]

    def to(self, device) -> PackedPairs:
        """Copies from pinned memory, so the host packs the next batch while the GPU works (a copy
        from pageable memory waits for the GPU to drain first)."""
        pin = torch.device(device).type == "cuda"
        moved = {k: ((v.pin_memory() if pin else v).to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                 for k, v in self.__dict__.items()}
        return PackedPairs(**moved)

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.numel())


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Shared leading tokens, leaving at least one token of each sequence to score."""
    n = 0
    limit = min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def _cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)


def pack_pairs(chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]]) -> PackedPairs:
    """One packed row for the pairs (chosen[i], rejected[i]) of full token sequences."""
    first_ids: list[int] = []
    first_pos: list[int] = []
    rej_ids: list[int] = []
    rej_pos: list[int] = []
    first_lens, rej_lens, k_lens, chosen_last, prefix_spans = [], [], [], [], []
    for c, r in zip(chosen, rejected, strict=True):
        s = common_prefix(c, r)
        start = len(first_ids)
        first_ids += c
        first_pos += range(len(c))
        first_lens.append(len(c))
        chosen_last.append(start + len(c) - 1)
        prefix_spans.append((start, s))
        rej_ids += r[s:]
        rej_pos += range(s, len(r))
        rej_lens.append(len(r) - s)
        k_lens.append(len(r))
    n_first = len(first_ids)
    kv_index: list[int] = []
    rejected_last: list[int] = []
    offset = n_first
    for (start, s), n_rej in zip(prefix_spans, rej_lens, strict=True):
        kv_index += range(start, start + s)
        kv_index += range(offset, offset + n_rej)
        offset += n_rej
        rejected_last.append(offset - 1)
    return PackedPairs(
        input_ids=torch.tensor(first_ids + rej_ids, dtype=torch.long),
        position_ids=torch.tensor(first_pos + rej_pos, dtype=torch.long),
        n_first=n_first, cu_first=_cu(first_lens), max_first=max(first_lens),
        cu_rej_q=_cu(rej_lens), max_rej_q=max(rej_lens),
        rej_kv_index=torch.tensor(kv_index, dtype=torch.long), cu_rej_k=_cu(k_lens), max_rej_k=max(k_lens),
        chosen_last=torch.tensor(chosen_last, dtype=torch.long),
        rejected_last=torch.tensor(rejected_last, dtype=torch.long))


# --- attention -------------------------------------------------------------------------------

_current: PackedPairs | None = None


@contextlib.contextmanager
def packed_layout(batch: PackedPairs) -> Iterator[None]:
    """Make ``batch`` the row the packed attention reads. ``packed_rewards`` holds it for the forward;
    with gradient checkpointing hold it through the backward too, where layers re-run attention."""
    global _current
    previous, _current = _current, batch
    try:
        yield
    finally:
        _current = previous


@functools.cache  # looked up once, not on each of a step's 2 × layers attention calls
def _varlen_kernel():
    """torch's flash varlen attention when present, with the keyword arguments this torch spells
    "causal" and "grouped-query" with (they changed between releases)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None, {}, False
    params = inspect.signature(varlen_attn).parameters
    causal = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    return varlen_attn, causal, "enable_gqa" in params


def _segments_sdpa(q, k, v, cu_q, cu_k, scale) -> torch.Tensor:
    """Reference path: SDPA per segment, causal aligned at the end (q is the tail of k)."""
    out = torch.empty_like(q)
    for i in range(cu_q.numel() - 1):
        qs, qe, ks, ke = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i]), int(cu_k[i + 1])
        nq, nk = qe - qs, ke - ks
        mask = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril(diagonal=nk - nq)
        out[qs:qe] = F.scaled_dot_product_attention(
            q[qs:qe].transpose(0, 1), k[ks:ke].transpose(0, 1), v[ks:ke].transpose(0, 1),
            attn_mask=mask, scale=scale).transpose(0, 1)
    return out


def _attend(q, k, v, cu_q, cu_k, max_q, max_k, scale) -> torch.Tensor:
    """q [Tq, H, D], k/v [Tk, Hkv, D] → [Tq, H, D], causal within each segment."""
    kernel, causal, takes_gqa = _varlen_kernel() if q.is_cuda else (None, {}, False)
    if kernel is None or not takes_gqa:
        groups = q.shape[1] // k.shape[1]
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if kernel is None:
        return _segments_sdpa(q, k, v, cu_q, cu_k, scale)
    kwargs = {"enable_gqa": True} if takes_gqa and q.shape[1] != k.shape[1] else {}
    # flash aligns the causal mask at the end when a segment has more keys than queries
    return kernel(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale, **causal, **kwargs)


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function for a :class:`PackedPairs` row (batch of one)."""
    b = _current
    if b is None:
        raise RuntimeError(f"attention '{ATTN_NAME}' used outside packed_rewards()")
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # [T, heads, D]
    n = b.n_first
    first = _attend(q[:n], k[:n], v[:n], b.cu_first, b.cu_first, b.max_first, b.max_first, scaling)
    rk, rv = k.index_select(0, b.rej_kv_index), v.index_select(0, b.rej_kv_index)
    rest = _attend(q[n:], rk, rv, b.cu_rej_q, b.cu_rej_k, b.max_rej_q, b.max_rej_k, scaling)
    return torch.cat([first, rest]).unsqueeze(0), None


def use_packed_attention(model, name: str = ATTN_NAME) -> str:
    """Switch the model's attention to the packed function (or back to ``name``); returns the
    previous implementation."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, packed_attention)
    previous = model.config._attn_implementation
    for sub in model.modules():  # sub-configs (the base model's) follow the same setting
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = name
    return previous


def packed_rewards(model, batch: PackedPairs) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards of a ``*ForSequenceClassification`` model whose attention is
    :func:`use_packed_attention`."""
    with packed_layout(batch):
        hidden = model.base_model(input_ids=batch.input_ids[None], position_ids=batch.position_ids[None],
                                  attention_mask=None).last_hidden_state[0]
    scores = model.score(hidden.index_select(0, torch.cat([batch.chosen_last, batch.rejected_last]))).squeeze(-1)
    n = batch.chosen_last.numel()
    return scores[:n].float(), scores[n:].float()
