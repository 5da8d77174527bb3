"""LLMRuntime: one entry point for every model call in zhufu.

    runtime.chat(requests)                      -> [ChatResult]   (text)
    runtime.structured(requests, MySchema)      -> [ChatResult]   (.parsed validated against MySchema)
    runtime.score(requests, ("是", "否"))        -> [ChatResult]   (.parsed["p"]: P(positive) vs negative)

It keys each request by (backend, model, messages, sampling, schema), answers from the call log
when it can, sends only the rest to the backend, validates structured output (one repair retry
for backends that cannot constrain decoding), records every call as an ``llm_calls`` event, and
keeps per-run accounting.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel

from resources.llm.calllog import CallLog, result_from_row
from resources.llm.structured import OutputError, parse_output, repair_prompt, schema_for
from resources.llm.types import Backend, ChatRequest, ChatResult, Generation
from warehouse.schema import LLMCallRow

log = logging.getLogger(__name__)


@dataclass
class Accounting:
    requests: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    ok: int = 0
    invalid: int = 0
    errors: int = 0
    repairs: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    wall_s: float = 0.0
    cost_usd: float | None = None
    failures: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = d["failures"][:20]
        d["wall_s"] = round(self.wall_s, 2)
        return {f"llm_{k}": v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, for the cost estimate."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0


class LLMRuntime:
    def __init__(self, backend: Backend, calls: CallLog | None = None, *, prices: Prices | None = None,
                 secrets: tuple[str, ...] = ()):
        self.backend = backend
        self.calls = calls or CallLog(None, run_id="none", asset_key="none")
        self.prices = prices
        self.secrets = tuple(s for s in secrets if s)
        self.stats = Accounting()
        # where "calls done / left" lines go while a long request list runs (the asset's log: LLMResource)
        self.progress: Callable[[str], None] | None = None

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    def redact(self, text: str | None) -> str | None:
        if text is None:
            return None
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    # ------------------------------------------------------------------ public

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return self._run(requests, None)

    def structured(self, requests: list[ChatRequest],
                   schema: type[BaseModel] | Sequence[type[BaseModel]]) -> list[ChatResult]:
        """JSON answers parsed into ``schema`` — one for all requests, or one per request, so agents
        with different schemas (the debate's two sides) share a batch."""
        schemas = list(schema) if isinstance(schema, list | tuple) else [schema] * len(requests)
        if len(schemas) != len(requests):
            raise ValueError(f"{len(schemas)} schemas for {len(requests)} requests")
        js = {s: schema_for(s) for s in set(schemas)}
        reqs = [r.model_copy(update={"json_schema": js[s], "schema_name": s.__name__})
                for r, s in zip(requests, schemas, strict=True)]
        return self._run(reqs, schemas)

    def score(self, requests: list[ChatRequest], labels: tuple[str, str] = ("是", "否")) -> list[ChatResult]:
        """The model's own probability of answering ``labels[0]`` rather than ``labels[1]``: one forward
        pass per request, no generation. ``.parsed = {"p": P(pos) / (P(pos) + P(neg)), "margin": logit
        difference, "logprobs": [pos, neg]}``; cached and logged like any call."""
        if not hasattr(self.backend, "score"):
            raise NotImplementedError(f"the {self.backend.name} backend cannot score answers")
        reqs = [r.model_copy(update={"score_labels": tuple(labels), "json_schema": None, "schema_name": None})
                for r in requests]
        return self._run(reqs, None, scoring=True)

    # ------------------------------------------------------------------ core

    def _chunk_size(self) -> int:
        """Requests handed to the backend at once: its own batch (or concurrency) size, so batching is
        not capped by how often the call log checkpoints; at least one checkpoint interval."""
        b = self.backend
        size = getattr(b, "batch_size", None) or 4 * (getattr(b, "max_concurrency", None) or 0)
        return max(1, self.calls.flush_every, int(size or 0))

    def _run(self, requests: list[ChatRequest], schemas: list[type[BaseModel]] | None,
             scoring: bool = False) -> list[ChatResult]:
        t0 = time.perf_counter()
        b = self.backend
        keys = [r.key(b.name, b.model_id) for r in requests]
        schema_of = dict(zip(keys, schemas, strict=True)) if schemas else {}
        recorded = self.calls.lookup(keys)
        results: dict[str, ChatResult] = {k: result_from_row(recorded[k]) for k in keys if k in recorded}
        todo: dict[str, ChatRequest] = {}
        for k, r in zip(keys, requests, strict=True):
            if k not in results:
                todo.setdefault(k, r)
        self.stats.requests += len(requests)
        self.stats.cache_hits += len(requests) - sum(1 for k in keys if k in todo)
        if todo:
            log.info(f"{b.name}:{b.model_id}: {len(todo)} model calls, {len(results)} answered from the call log")
            items = list(todo.items())
            step = self._chunk_size()
            try:
                # Chunk by chunk, each checkpointed before the next starts: a killed run keeps
                # every finished chunk and the re-run asks only for the rest.
                for i in range(0, len(items), step):
                    chunk = items[i : i + step]
                    t = time.perf_counter()
                    gens = (b.score if scoring else b.generate)([req for _, req in chunk])
                    per_call_ms = (time.perf_counter() - t) * 1000 / len(chunk)
                    self.stats.model_calls += len(chunk)
                    for (k, req), gen in zip(chunk, gens, strict=True):
                        results[k] = self._finish(k, req, gen, schema_of.get(k), per_call_ms)
                    self.calls.flush()
                    self._report(min(i + step, len(items)), len(items), time.perf_counter() - t0)
            finally:
                self.calls.flush()
        self.stats.wall_s += time.perf_counter() - t0
        return [results[k].model_copy(update={"item": r.item}) for k, r in zip(keys, requests, strict=True)]

    def _report(self, done: int, total: int, elapsed: float) -> None:
        if self.progress is None or total <= self._chunk_size():  # one chunk: nothing to follow
            return
        left = f", about {elapsed / done * (total - done):.0f} s left" if done < total else ""
        self.progress(f"{self.model_id}: {done}/{total} model calls done in {elapsed:.0f} s{left}")

    def _finish(self, key: str, req: ChatRequest, gen: Generation, schema: type[BaseModel] | None,
                latency_ms: float) -> ChatResult:
        status, parsed, error = "ok", None, None
        text = gen.text
        if gen.error is not None:
            status, error = "error", self.redact(gen.error)
        elif req.score_labels is not None:
            if gen.label_logprobs is None:
                status, error = "invalid", "the backend returned no label log-probabilities"
            else:
                lp, ln = gen.label_logprobs
                margin = lp - ln
                parsed = {"p": 1.0 / (1.0 + math.exp(-max(min(margin, 60.0), -60.0))), "margin": margin,
                          "logprobs": [lp, ln]}
        elif schema is not None:
            try:
                parsed = parse_output(text, schema).model_dump(mode="json")
            except OutputError as exc:
                if not self.backend.constrains_output:
                    parsed, text, gen, exc2 = self._repair(req, text, str(exc), schema, gen)
                    if parsed is None and gen.error is not None:  # the retry never got an answer: retry next run
                        status, error = "error", f"{exc}; repair failed: {exc2}"
                    elif parsed is None:
                        status, error = "invalid", f"{exc}; after repair: {exc2}"
                elif gen.finish_reason == "repetition":
                    status, error = "invalid", "stopped in a repetition loop before the JSON was complete"
                elif gen.finish_reason == "length":
                    status = "invalid"
                    error = f"output cut at max_new_tokens={req.sampling.max_new_tokens} before the JSON was complete"
                else:
                    status, error = "invalid", str(exc)
        result = ChatResult(request_key=key, item=req.item, status=status, text=text, parsed=parsed,
                            error=error, tokens_in=gen.tokens_in, tokens_out=gen.tokens_out,
                            latency_ms=round(latency_ms, 2))
        self._account(result)
        self.calls.record(LLMCallRow(
            request_key=key, backend=self.backend.name, model=self.backend.model_id,
            request={"messages": req.messages, "sampling": req.sampling.model_dump(),
                     "json_schema": req.json_schema, "schema_name": req.schema_name, "item": req.item,
                     **({"score_labels": list(req.score_labels)} if req.score_labels else {}),
                     "attempts": gen.attempts},
            response=text, parsed=parsed, status=status, error=error,
            tokens_in=gen.tokens_in, tokens_out=gen.tokens_out, latency_ms=result.latency_ms))
        return result

    def _repair(self, req: ChatRequest, text: str | None, error: str, schema: type[BaseModel],
                gen: Generation) -> tuple[dict | None, str | None, Generation, str | None]:
        """One retry that shows the model its unparseable output and asks for JSON only."""
        self.stats.repairs += 1
        self.stats.model_calls += 1
        fix = req.model_copy(update={"messages": [*req.messages, {"role": "assistant", "content": text or ""},
                                                   {"role": "user", "content": repair_prompt(text or "", error)}]})
        (g2,) = self.backend.generate([fix])
        merged = Generation(text=g2.text, tokens_in=(gen.tokens_in or 0) + (g2.tokens_in or 0),
                            tokens_out=(gen.tokens_out or 0) + (g2.tokens_out or 0),
                            finish_reason=g2.finish_reason, error=g2.error, attempts=gen.attempts + g2.attempts)
        if g2.error is not None:
            return None, text, merged, self.redact(g2.error)
        try:
            return parse_output(g2.text, schema).model_dump(mode="json"), g2.text, merged, None
        except OutputError as exc:
            return None, g2.text, merged, str(exc)

    def _account(self, r: ChatResult) -> None:
        s = self.stats
        s.tokens_in += r.tokens_in or 0
        s.tokens_out += r.tokens_out or 0
        if r.status == "ok":
            s.ok += 1
        else:
            s.invalid += r.status == "invalid"
            s.errors += r.status == "error"
            s.failures.append(f"{r.item or r.request_key[:12]}: {r.status}: {r.error}")
        if self.prices is not None:
            s.cost_usd = round(s.tokens_in * self.prices.input_per_m / 1e6 + s.tokens_out * self.prices.output_per_m / 1e6, 6)
