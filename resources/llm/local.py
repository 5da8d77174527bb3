"""The ``local`` backend: transformers on CPU or CUDA, batched, with per-request seeds and
JSON-schema-constrained decoding (xgrammar)."""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from resources.llm.types import ChatRequest, Generation

log = logging.getLogger(__name__)


_MASK32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32) on int64 tensors; low 32 bits are exact under wraparound."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _common_prefix(seqs: list[list[int]]) -> list[int]:
    """The longest shared token prefix, one token short of the shortest sequence (each row keeps a suffix)."""
    first = seqs[0]
    n = min(len(x) for x in seqs) - 1
    for x in seqs[1:]:
        k = 0
        while k < n and x[k] == first[k]:
            k += 1
        n = k
    return first[: max(n, 0)]


class _PerRowSampler(LogitsProcessor):
    """Temperature + top-p + Gumbel-max sampling, reproducible per request.

    transformers samples a batch from one global RNG, so a request's output would depend on what
    it was batched with. Here the noise for (seed, step, token) comes from a counter-based hash
    computed on the device for the whole batch at once: the same request samples the same text
    whatever its batch, and on CPU and GPU alike. ``generate`` then runs greedily over the
    perturbed scores (Gumbel-max = sampling).
    """

    def __init__(self, samplings: list[Any], device: torch.device):
        self.temps = torch.tensor([s.temperature for s in samplings], device=device).unsqueeze(1)
        self.top_ps = torch.tensor([s.top_p for s in samplings], device=device).unsqueeze(1)
        seeds = torch.tensor([int(s.seed) & _MASK32 for s in samplings], dtype=torch.int64, device=device)
        self.seed_keys = _hash32(seeds * 0x9E3779B9 + 0x632BE5AB).unsqueeze(1)
        self.needs_top_p = any(s.top_p < 1.0 and s.temperature > 0 for s in samplings)
        self.all_greedy = all(s.temperature <= 0 for s in samplings)
        self.step = 0
        self._vocab_ids: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.all_greedy:
            return scores
        scores = scores.float()
        scaled = scores / self.temps.clamp(min=1e-6)
        if self.needs_top_p:
            sorted_logits, idx = torch.sort(scaled, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            # keep the smallest prefix whose mass reaches top_p (the top token always stays)
            remove = (torch.cumsum(probs, dim=-1) - probs) > self.top_ps
            scaled = scaled.scatter(1, idx, sorted_logits.masked_fill(remove, float("-inf")))
        if self._vocab_ids is None or self._vocab_ids.shape[-1] != scores.shape[-1]:
            self._vocab_ids = torch.arange(scores.shape[-1], dtype=torch.int64, device=scores.device).unsqueeze(0)
        step_key = _hash32(self.seed_keys + self.step * 0x85EBCA6B)
        bits = _hash32(_hash32(self._vocab_ids + step_key) ^ self.seed_keys)
        # 23 bits + 0.5 is exact in float32, so u stays strictly inside (0, 1); a u of 1.0 would
        # give +inf noise, and -inf (masked) + inf = NaN, which argmax would pick.
        u = ((bits >> 9).float() + 0.5) / 8388608.0
        self.step += 1
        gumbel = -torch.log(-torch.log(u))
        return torch.where(self.temps <= 0, scores, scaled + gumbel)


class _Degenerate(StoppingCriteria):
    """Stops a row that has fallen into a loop: its last ``window`` tokens repeat with a period of at
    most ``max_period`` tokens (看看看… spelled in byte tokens, or one word over and over). Greedy
    decoding does not leave such a loop, and a batch decodes until its longest row ends, so one
    looping row used to hold every row of its batch to ``max_new_tokens`` (measured on CPU: 329
    steps for a batch whose other rows were done after ~110). The row ends as cut, never as an answer."""

    def __init__(self, prompt_width: int, window: int = 32, max_period: int = 4):
        self.width, self.window, self.max_period = prompt_width, window, max_period
        self.flagged: set[int] = set()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] - self.width < self.window:
            return done
        tail = input_ids[:, -self.window:]
        for p in range(1, self.max_period + 1):
            done |= (tail[:, p:] == tail[:, :-p]).all(dim=1)
        self.flagged.update(int(i) for i in done.nonzero().flatten())
        return done


class _GrammarMasks(LogitsProcessor):
    """xgrammar token masks, one matcher per row (rows without a schema are left free)."""

    def __init__(self, compiled: list[Any | None], stopped: set[int] | None = None):
        import xgrammar as xgr

        self.xgr = xgr
        self.stopped = stopped if stopped is not None else set()  # rows ended by a stopping criterion
        self.rows = [i for i, c in enumerate(compiled) if c is not None]
        self.matchers = {i: xgr.GrammarMatcher(compiled[i]) for i in self.rows}
        vocab = next(c for c in compiled if c is not None).tokenizer_info.vocab_size
        self.bitmask = xgr.allocate_token_bitmask(len(compiled), vocab)
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.started:
            for i in self.rows:
                m = self.matchers[i]
                if i in self.stopped:  # padding follows a row stopped mid-answer: nothing to match
                    continue
                if not m.is_terminated() and not m.accept_token(int(input_ids[i, -1])):
                    raise RuntimeError(f"row {i}: sampled a token outside the JSON grammar")
        self.started = True
        self.xgr.reset_token_bitmask(self.bitmask)
        for i in self.rows:
            if not self.matchers[i].is_terminated():
                self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        device = scores.device
        cpu_scores = scores.float().cpu() if device.type != "cuda" else scores
        width = cpu_scores.shape[-1]
        self.xgr.apply_token_bitmask_inplace(
            cpu_scores, self.bitmask.to(cpu_scores.device), vocab_size=width, indices=self.rows
        )
        return cpu_scores.to(device)


class LocalBackend:
    """transformers generation. ``model`` is a path or hub id (already resolved by the store)."""

    name = "local"
    constrains_output = True

    def __init__(self, model: str, *, model_id: str | None = None, batch_size: int = 16,
                 device: str | None = None, dtype: str | None = None, progress: bool = True):
        self.model_path = model
        self.model_id = model_id or model
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.progress = progress
        self._model = None
        self._tokenizer = None
        self._grammar_compiler = None
        self._grammar_cache: dict[str, Any] = {}
        self._cache_arg: str | None = None
        self._prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    # ------------------------------------------------------------------ loading

    def load(self) -> tuple[Any, Any]:
        if self._model is None:
            t0 = time.perf_counter()
            tok = AutoTokenizer.from_pretrained(self.model_path)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype).to(self.device)
            model.eval()
            self._model, self._tokenizer = model, tok
            log.info(f"loaded {self.model_id} on {self.device} in {time.perf_counter() - t0:.1f}s")
        return self._model, self._tokenizer

    def _compiled(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammar_cache:
            try:
                import xgrammar as xgr
            except ImportError as exc:  # pragma: no cover - installed by the Makefile
                raise RuntimeError("structured output on the local backend needs xgrammar "
                                   "(pip install --no-deps xgrammar apache-tvm-ffi)") from exc
            if self._grammar_compiler is None:
                model, tok = self.load()
                info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=model.config.vocab_size)
                self._grammar_compiler = xgr.GrammarCompiler(info)
            self._grammar_cache[key] = self._grammar_compiler.compile_json_schema(
                key, any_whitespace=False, strict_mode=True)
        return self._grammar_cache[key]

    # ------------------------------------------------------------------ generation

    def _prompt_ids(self, tok: Any, request: ChatRequest) -> list[int]:
        if tok.chat_template:
            ids = tok.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n".join(f"{m['role']}: {m['content']}" for m in request.messages) + "\nassistant:"
        return tok(text)["input_ids"]

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        """Batched generation. Requests that share a system message (an agent's instructions: hundreds
        of tokens of Chinese) share its key/value cache: it is computed once per distinct message and
        every batch runs only its rows' own suffixes, so a batch can mix agents (both debate sides)."""
        model, tok = self.load()
        encoded = [self._prompt_ids(tok, r) for r in requests]
        prefix_len = self._shared_prefixes(model, requests, encoded)
        # Sort by the length each row still has to run, so each batch pads little; answers go back in request order.
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]) - prefix_len[i])
        results: list[Generation | None] = [None] * len(requests)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        bar = tqdm(total=len(requests), desc=f"generate ({self.model_id})", unit="req",
                   disable=not self.progress, leave=False)
        for batch in batches:
            gens = self._generate_batch(model, tok, [requests[i] for i in batch], [encoded[i] for i in batch],
                                        [prefix_len[i] for i in batch])
            for i, gen in zip(batch, gens, strict=True):
                results[i] = gen
            bar.update(len(batch))
        bar.close()
        self._prefixes.clear()
        return results  # type: ignore[return-value]

    def _shared_prefixes(self, model: Any, requests: list[ChatRequest], encoded: list[list[int]]) -> list[int]:
        """Per request, how many leading tokens come from a cached prefix (0 = none): one cache per system
        message that two or more requests share, filled into ``self._prefixes`` (tokens -> layer tensors)."""
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            if r.messages and r.messages[0]["role"] == "system":
                groups.setdefault(r.messages[0]["content"], []).append(i)
        out = [0] * len(requests)
        for members in groups.values():
            prefix = _common_prefix([encoded[i] for i in members])
            if len(members) < 2 or len(prefix) < 16:
                continue
            layers = self._prefix_layers(model, prefix)
            if layers is None:  # a transformers whose cache this code cannot read: no sharing
                return [0] * len(requests)
            self._prefixes[tuple(prefix)] = layers
            for i in members:
                out[i] = len(prefix)
        return out

    @torch.inference_mode()
    def _prefix_layers(self, model: Any, prefix: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        cache = self._prefix_cache(model, prefix)
        layers = getattr(cache, "layers", None)
        if not layers or any(getattr(x, "keys", None) is None for x in layers):
            return None
        return [(x.keys, x.values) for x in layers]

    def _batch_cache(self, model: Any, rows: list[list[int]], widths: list[int]) -> tuple[Any, int]:
        """A cache for a batch whose row i starts with a cached prefix of ``widths[i]`` tokens, left-padded
        to the longest (the padding is masked out; positions follow from the attention mask)."""
        from transformers import DynamicCache

        width = max(widths)
        per_row = [self._prefixes[tuple(r[:w])] for r, w in zip(rows, widths, strict=True)]
        cache = DynamicCache()
        for layer in range(len(per_row[0])):
            ks, vs = [], []
            for w, layers in zip(widths, per_row, strict=True):
                k, v = layers[layer]
                pad = (0, 0, width - w, 0)  # left-pad the sequence dimension of [1, heads, seq, dim]
                ks.append(torch.nn.functional.pad(k, pad))
                vs.append(torch.nn.functional.pad(v, pad))
            cache.update(torch.cat(ks), torch.cat(vs), layer)
        return cache, width

    def label_token_ids(self, labels: tuple[str, str]) -> tuple[int, int]:
        """The first token of each answer (for 是/否 a single token in SmolLM2's vocabulary)."""
        _, tok = self.load()
        ids = [tok.encode(x, add_special_tokens=False) for x in labels]
        if not all(ids) or ids[0][0] == ids[1][0]:
            raise ValueError(f"answers {labels} do not start with distinct tokens")
        return ids[0][0], ids[1][0]

    def score(self, requests: list[ChatRequest]) -> list[Generation]:
        """Log-probabilities of each request's two answers as the next token: one forward pass.

        Requests that share a system message (the judge's principles: hundreds of tokens of
        Chinese) share its key/value cache: the common token prefix runs once per group, each
        batch runs only its own suffixes (right padding, the LM head on each row's last token)."""
        model, tok = self.load()
        encoded = [self._prompt_ids(tok, r) for r in requests]
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.messages[0]["content"] if r.messages[0]["role"] == "system" else "", []).append(i)
        out: list[Generation | None] = [None] * len(requests)
        width = max(1, self.batch_size * 2)  # a forward pass needs far less memory than generation
        bar = tqdm(total=len(requests), desc=f"score ({self.model_id})", unit="req", disable=not self.progress,
                   leave=False)
        for members in groups.values():
            prefix = _common_prefix([encoded[i] for i in members])
            cache = self._prefix_cache(model, prefix) if len(members) > 1 and len(prefix) >= 16 else None
            cut = len(prefix) if cache is not None else 0
            order = sorted(members, key=lambda i: len(encoded[i]))
            for start in range(0, len(order), width):
                batch = order[start : start + width]
                lps = self._score_batch(model, tok, [encoded[i][cut:] for i in batch],
                                        [self.label_token_ids(requests[i].score_labels) for i in batch], cache, cut)
                for i, lp in zip(batch, lps, strict=True):
                    out[i] = Generation(text=f"{lp[0]:.4f} {lp[1]:.4f}", tokens_in=len(encoded[i]), tokens_out=0,
                                        finish_reason="score", label_logprobs=lp)
                bar.update(len(batch))
        bar.close()
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _prefix_cache(self, model: Any, prefix: list[int]) -> Any:
        ids = torch.tensor([prefix], device=self.device)
        out = model.base_model(input_ids=ids, use_cache=True)
        return out.get("cache") or out.past_key_values

    def _cache_kwarg(self, model: Any) -> str:
        """transformers renamed ``past_key_values`` to ``cache`` (5.2x); use what this version takes.
        Looked up once per backend, not on every scoring batch."""
        if self._cache_arg is None:
            import inspect

            params = inspect.signature(model.base_model.forward).parameters
            self._cache_arg = "cache" if "cache" in params else "past_key_values"
        return self._cache_arg

    @torch.inference_mode()
    def _score_batch(self, model: Any, tok: Any, ids: list[list[int]], labels: list[tuple[int, int]],
                     cache: Any = None, offset: int = 0) -> list[tuple[float, float]]:
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id
        n = len(ids)
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=self.device)
        attention = torch.tensor([[1] * (offset + len(x)) + [0] * (width - len(x)) for x in ids], device=self.device)
        kwargs: dict[str, Any] = {}
        if cache is not None:
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(n)
            kwargs = {self._cache_kwarg(model): past, "use_cache": True,
                      "position_ids": torch.arange(offset, offset + width, device=self.device).expand(n, -1)}
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention, **kwargs).last_hidden_state
        last = torch.tensor([len(x) - 1 for x in ids], device=self.device)
        rows = torch.arange(n, device=self.device)
        logits = model.get_output_embeddings()(hidden[rows, last]).float()
        logp = torch.log_softmax(logits, dim=-1)
        pos = torch.tensor([a for a, _ in labels], device=self.device)
        neg = torch.tensor([b for _, b in labels], device=self.device)
        return list(zip(logp[rows, pos].tolist(), logp[rows, neg].tolist(), strict=True))

    @torch.inference_mode()
    def _generate_batch(self, model: Any, tok: Any, reqs: list[ChatRequest], ids: list[list[int]],
                        prefix_len: list[int] | None = None) -> list[Generation]:
        pad = tok.pad_token_id
        cached = [w if w and tuple(x[:w]) in self._prefixes else 0 for x, w in zip(ids, prefix_len or [0] * len(ids),
                                                                                  strict=True)]
        kwargs: dict[str, Any] = {}
        if all(cached):
            # [pad…, prefix | pad…, suffix]: the cache holds the left part, the model runs the right one
            cache, head = self._batch_cache(model, ids, cached)
            tail = max(len(x) - w for x, w in zip(ids, cached, strict=True))
            rows = [[pad] * (head - w) + x[:w] + [pad] * (tail - (len(x) - w)) + x[w:] for x, w in zip(ids, cached,
                                                                                                       strict=True)]
            masks = [[0] * (head - w) + [1] * w + [0] * (tail - (len(x) - w)) + [1] * (len(x) - w)
                     for x, w in zip(ids, cached, strict=True)]
            kwargs[self._cache_kwarg(model)] = cache
        else:
            tail = max(len(x) for x in ids)
            rows = [[pad] * (tail - len(x)) + x for x in ids]
            masks = [[0] * (tail - len(x)) + [1] * len(x) for x in ids]
        input_ids = torch.tensor(rows, device=self.device)
        attention = torch.tensor(masks, device=self.device)
        width = input_ids.shape[1]
        loops = _Degenerate(width)
        processors: list[LogitsProcessor] = []
        if any(r.json_schema for r in reqs):
            processors.append(_GrammarMasks([self._compiled(r.json_schema) if r.json_schema else None for r in reqs],
                                            loops.flagged))
        processors.append(_PerRowSampler([r.sampling for r in reqs], self.device))
        max_new = max(r.sampling.max_new_tokens for r in reqs)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            do_sample=False,
            max_new_tokens=max_new,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([loops]),
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
            **kwargs,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        gens = []
        for i, (row, r, x) in enumerate(zip(out[:, width:].tolist(), reqs, ids, strict=True)):
            row = row[: r.sampling.max_new_tokens]
            finish = "length"
            if i in loops.flagged:  # stopped in a loop: what it wrote up to there (padding follows)
                row = row[: row.index(pad)] if pad in row else row
                finish = "repetition"
            elif tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id)]
                finish = "stop"
            gens.append(Generation(text=tok.decode(row, skip_special_tokens=True), tokens_in=len(x),
                                   tokens_out=len(row), finish_reason=finish))
        return gens
