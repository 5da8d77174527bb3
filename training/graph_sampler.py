"""Fast rollouts for GRPO without vLLM: a static KV cache and one CUDA graph per decode step.

At SmolLM2's size a decode step is a few hundred tiny kernels, so transformers' ``generate`` is
bound by Python and kernel-launch overhead (~25–38 ms a token on an H100, bench/RESULTS.md).
Here the prompt is prefilled eagerly, then each further token is one replay of a captured CUDA
graph that embeds the last token, runs every layer against a preallocated KV cache, samples the
next token on the GPU (temperature, top-k, top-p) and advances the write slot — no host work
between tokens except the replay call. The graph reads the model's own parameter tensors, which
the optimizer updates in place, so the policy being trained is always the one sampled from.

Works for the Llama family (Llama, Mistral without sliding windows, Qwen2: ``supported``);
on CPU the same code runs eagerly (tests compare it with ``generate``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
PROMPT_BUCKET = 32  # prompts are left-padded to a multiple of this: few distinct graph shapes


def unsupported_reason(model) -> str | None:
    """Why this model cannot use the graph sampler (None: it can)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return f"model type {getattr(cfg, 'model_type', None)!r} is not one of {SUPPORTED_TYPES}"
    if cfg.model_type != "llama" and getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return "sliding-window attention (the static cache keeps every position)"
    if hasattr(model, "peft_config"):
        return "a PEFT-wrapped model (merge the adapters first)"
    return None


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0  # 0 → greedy
    top_k: int = 0
    top_p: float = 1.0


class _State:
    """Static buffers of one (batch, cache length) shape, and its captured decode graph."""

    def __init__(self, model, batch: int, length: int, max_new: int):
        cfg, p = model.config, next(model.parameters())
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        shape = (cfg.num_hidden_layers, batch, cfg.num_key_value_heads, length, head_dim)
        self.k = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.v = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.valid = torch.zeros(batch, length, dtype=torch.bool, device=p.device)
        self.tokens = torch.zeros(batch, max_new, dtype=torch.long, device=p.device)
        self.cur = torch.zeros(batch, dtype=torch.long, device=p.device)
        self.pos = torch.zeros(batch, dtype=torch.long, device=p.device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=p.device)
        self.greedy = torch.zeros(batch, dtype=torch.bool, device=p.device)  # rows decoded by argmax
        self.slot = torch.zeros(1, dtype=torch.long, device=p.device)
        self.step = torch.zeros(1, dtype=torch.long, device=p.device)
        self.graph: torch.cuda.CUDAGraph | None = None


class GraphSampler:
    def __init__(self, model, *, eos_token_ids: Sequence[int], pad_token_id: int, sampling: Sampling = Sampling(),
                 use_graphs: bool | None = None):
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"graph sampler: {reason}")
        self.model, self.sampling = model, sampling
        self.body = model.model
        self.heads = model.config.num_attention_heads
        self.rope = sys.modules[type(self.body.layers[0].self_attn).__module__].apply_rotary_pos_emb
        device = next(model.parameters()).device
        self.eos = torch.tensor(list(eos_token_ids), device=device)
        self.pad_id = pad_token_id
        self.use_graphs = device.type == "cuda" if use_graphs is None else use_graphs
        self.states: dict[tuple[int, int, int], _State] = {}

    # --- the model, written against a static cache ----------------------------------------------

    def _attend(self, layer, h, s: _State, li: int, rotary, write, key_mask):
        """One attention block. h [B, S, hidden]; writes K/V at ``write`` (cache slots, [S] or a
        1-element slot tensor); key_mask [B, S, L] says which cache slots each query may see."""
        attn = layer.self_attn
        b, n, _ = h.shape
        heads, kv_heads, d = self.heads, s.k.shape[2], s.k.shape[-1]
        q = attn.q_proj(h).view(b, n, heads, d).transpose(1, 2)
        k = attn.k_proj(h).view(b, n, kv_heads, d).transpose(1, 2)
        v = attn.v_proj(h).view(b, n, kv_heads, d).transpose(1, 2)
        q, k = self.rope(q, k, *rotary)
        s.k[li].index_copy_(2, write, k)
        s.v[li].index_copy_(2, write, v)
        groups = heads // kv_heads
        q = q.reshape(b, kv_heads, groups * n, d)  # queries of a KV head's group share its keys
        scores = (q @ s.k[li].transpose(-1, -2)).float() * attn.scaling
        scores = scores.view(b, kv_heads, groups, n, -1).masked_fill(~key_mask[:, None, None], torch.finfo(torch.float32).min)
        probs = scores.softmax(-1).to(h.dtype).view(b, kv_heads, groups * n, -1)
        out = (probs @ s.v[li]).view(b, heads, n, d).transpose(1, 2).reshape(b, n, heads * d)
        return attn.o_proj(out)

    def _forward(self, ids, s: _State, positions, write, key_mask) -> torch.Tensor:
        """Logits of the last position of ``ids`` [B, S]."""
        x = self.body.embed_tokens(ids)
        rotary = self.body.rotary_emb(x, positions)  # (cos, sin), shared by every layer
        for li, layer in enumerate(self.body.layers):
            x = x + self._attend(layer, layer.input_layernorm(x), s, li, rotary, write, key_mask)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.lm_head(self.body.norm(x[:, -1])).float()

    def _sample(self, logits: torch.Tensor, greedy: torch.Tensor) -> torch.Tensor:
        sp = self.sampling
        if sp.temperature <= 0:
            return logits.argmax(-1)
        return torch.where(greedy, logits.argmax(-1), self._draw(logits))

    def _draw(self, logits: torch.Tensor) -> torch.Tensor:
        sp = self.sampling
        logits = logits / sp.temperature
        if sp.top_k and sp.top_k < logits.shape[-1]:
            kth = logits.topk(sp.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if sp.top_p < 1.0:  # nucleus: drop the tail whose mass lies beyond top_p, keep at least one
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            sorted_probs = sorted_logits.softmax(-1)
            drop = sorted_probs.cumsum(-1) - sorted_probs > sp.top_p
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        probs = logits.softmax(-1)
        return (probs / torch.empty_like(probs).exponential_()).argmax(-1)  # exponential race = a draw

    def _emit(self, s: _State, logits: torch.Tensor) -> None:
        nxt = torch.where(s.done, torch.full_like(s.cur, self.pad_id), self._sample(logits, s.greedy))
        s.tokens.index_copy_(1, s.step, nxt[:, None])
        s.done |= torch.isin(nxt, self.eos)
        s.cur.copy_(nxt)

    def _decode_step(self, s: _State) -> None:
        s.valid.index_fill_(1, s.slot, True)
        logits = self._forward(s.cur[:, None], s, s.pos[:, None], s.slot, s.valid[:, None, :])
        self._emit(s, logits)
        s.slot += 1
        s.pos += 1
        s.step += 1

    # --- driving it ------------------------------------------------------------------------------

    def _state(self, batch: int, length: int, max_new: int) -> _State:
        key = (batch, length, max_new)
        if key not in self.states:
            self.states[key] = _State(self.model, batch, length, max_new)
        return self.states[key]

    def _capture(self, s: _State) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture (allocator, cuBLAS handles)
            for _ in range(2):
                self._decode_step(s)
        torch.cuda.current_stream().wait_stream(side)
        s.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(s.graph):
            self._decode_step(s)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                 greedy: Sequence[bool] | None = None) -> list[list[int]]:
        """Completions (token ids up to and including the first EOS) for the prompt token lists;
        rows marked in ``greedy`` are decoded by argmax whatever the sampling settings."""
        device = self.eos.device
        batch, longest = len(prompts), max(len(p) for p in prompts)
        width = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
        s = self._state(batch, width + max_new_tokens, max_new_tokens)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.bool)
        for i, p in enumerate(prompts):  # left padding: every row's next token goes to the same slot
            ids[i, width - len(p):] = torch.tensor(list(p))
            mask[i, width - len(p):] = True
        ids, mask = ids.to(device), mask.to(device)
        if self.use_graphs and s.graph is None:
            self._capture(s)
        s.valid.zero_()
        s.valid[:, :width] = mask
        s.done.zero_()
        if greedy is not None and len(greedy) != batch:
            raise ValueError(f"graph sampler: {len(greedy)} greedy flags for {batch} prompts")
        s.greedy.copy_(torch.tensor([bool(g) for g in greedy] if greedy is not None else [False] * batch))
        s.tokens.fill_(self.pad_id)
        s.step.zero_()
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        key_mask = torch.zeros(batch, width, s.valid.shape[1], dtype=torch.bool, device=device)
        key_mask[:, :, :width] = causal[None] & mask[:, None, :]
        logits = self._forward(ids, s, positions, torch.arange(width, device=device), key_mask)
        self._emit(s, logits)
        s.slot.fill_(width)
        s.pos.copy_(mask.sum(-1))
        s.step.fill_(1)
        for t in range(1, max_new_tokens):
            if s.graph is not None:
                s.graph.replay()
            else:
                self._decode_step(s)
            if t % 16 == 0 and bool(s.done.all()):  # one host sync every 16 tokens
                break
        eos, out = set(self.eos.tolist()), []
        for row in s.tokens.tolist():
            end = next((j for j, t in enumerate(row) if t in eos), None)
            out.append(row if end is None else row[: end + 1])
        return out
