"""Requests, results and the backend protocol of the LLM runtime (no Dagster here)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from warehouse.ids import content_id


class Sampling(BaseModel):
    model_config = ConfigDict(frozen=True)
    temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1, le=8192)
    seed: int = 0


def request_seed(base: int, *item: Any) -> int:
    """A sampling seed for one request of a batch: ``base`` mixed with what the request is for.

    Every backend draws a request's noise from its seed alone (the local sampler by design, and a vLLM
    server's per-request generator), so requests that share a seed share their noise: a batch sampled
    with one seed perturbs the same tokens at the same steps in every row, and its outputs err together.
    Measured in reflection rounds seeded by the round number: a whole round's revisions came out far
    worse (or better) than the next round's (bench/RESULTS.md, "Reflection rounds with one seed per request")."""
    return int(content_id("seed", base, *item, length=8), 16) & 0x7FFFFFFF


class ChatRequest(BaseModel):
    """One chat completion. ``item`` names what it is for (a candidate id…) in errors; it is not
    part of the cache key, so two items asking the very same thing share one call."""

    model_config = ConfigDict(frozen=True)
    messages: list[dict[str, str]]
    sampling: Sampling = Sampling()
    json_schema: dict[str, Any] | None = Field(default=None, description="constrain the output to this schema")
    schema_name: str | None = None
    score_labels: tuple[str, str] | None = Field(
        default=None, description="(positive, negative) answer: score the next token instead of generating")
    item: str | None = None

    def key(self, backend: str, model: str) -> str:
        """The cache key: backend, model, messages, sampling parameters, schema (and scored labels)."""
        extra = ["score", list(self.score_labels)] if self.score_labels else []
        return content_id(
            "llm", backend, model, self.messages, self.sampling.model_dump(), self.json_schema, *extra, length=32
        )


Status = Literal["ok", "invalid", "error"]


class Generation(BaseModel):
    """What a backend returns for one request."""

    text: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    error: str | None = Field(default=None, description="transport/server failure after retries")
    attempts: int = 1
    label_logprobs: tuple[float, float] | None = Field(
        default=None, description="score requests: log-probabilities of the positive and negative answer's first token")


class ChatResult(BaseModel):
    """The runtime's answer for one request: ``ok``, ``invalid`` (the model answered, but not in the
    schema: deterministic, cached) or ``error`` (the call itself failed: retried on the next run)."""

    request_key: str
    item: str | None = None
    status: Status
    text: str | None = None
    parsed: dict[str, Any] | None = None
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: float | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Backend(Protocol):
    """A way to run chat completions. ``generate`` keeps the order of its requests."""

    name: str
    model_id: str
    # True when the backend enforces ``json_schema`` while decoding (no repair retry needed).
    constrains_output: bool

    def generate(self, requests: list[ChatRequest]) -> list[Generation]: ...

    def score(self, requests: list[ChatRequest]) -> list[Generation]:
        """For requests with ``score_labels``: one forward pass each, ``label_logprobs`` filled."""
        ...
