"""The ``openai`` backend: any OpenAI-compatible endpoint (vLLM server, hosted APIs).

Async with a concurrency limit. 429, 5xx, timeouts, connection errors and unreadable bodies are
retried with exponential backoff and jitter, honouring ``Retry-After``, at most ``max_attempts``
times; then the request is answered with an error (recorded, never raised). Structured output
uses ``response_format`` with a JSON schema; an endpoint that rejects it is asked again without
it (the runtime then parses tolerantly and repairs once).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
from typing import Any

import openai

from resources.llm.types import ChatRequest, Generation
from warehouse.config import MASK, redact_location

log = logging.getLogger(__name__)

class _BadBody(Exception):
    pass


_RETRYABLE = (_BadBody, openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
              openai.APIConnectionError, openai.APIResponseValidationError)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each secret, any ``Bearer <token>``, ``sk-…`` key and URL/DSN password masked.
    Applied to every log line and error string this backend produces (endpoints echo keys)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return redact_location(_KEY_LIKE.sub(MASK, _BEARER.sub(rf"\1{MASK}", text)))


def _describe(exc: BaseException, *secrets: str | None) -> str:
    """One line for an error: its kind, HTTP status and message, redacted before it is cut."""
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    text = redact(str(exc), *secrets)
    msg = text.splitlines()[0][:300] if text else ""
    return f"{kind}{f' HTTP {status}' if status else ''}: {msg}"


# An answer missing from the endpoint's top log-probabilities is at most this likely.
_FLOOR_LOGPROB = -30.0


def label_logprobs(choice: Any, labels: tuple[str, str]) -> tuple[float, float] | None:
    """Log-probabilities of the two answers from the first token's top alternatives: the best entry
    whose text is a prefix of the answer (tokenizers may split 是 into bytes). None when absent."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    if not content:
        return None
    tops = list(content[0].top_logprobs or []) or [content[0]]
    floor = min([_FLOOR_LOGPROB, *(t.logprob for t in tops)])
    found = []
    for label in labels:
        hits = [t.logprob for t in tops if t.token.strip() and label.startswith(t.token.strip())]
        found.append(max(hits) if hits else None)
    if found[0] is None and found[1] is None:
        return None
    return tuple(floor if x is None else x for x in found)  # type: ignore[return-value]


class OpenAIBackend:
    name = "openai"
    constrains_output = False  # response_format is honoured by many, not all, endpoints

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 max_concurrency: int = 8, timeout_s: float = 60.0, max_attempts: int = 5,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, response_format: bool = True):
        self.model_id = model
        self.base_url = base_url
        self._api_key = api_key or "EMPTY"  # vLLM servers accept any key; never logged or stored
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.response_format = response_format

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(model={self.model_id!r}, base_url={self.base_url!r})"

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate_all(requests))
        # Called from inside an event loop (a notebook): run ours on a separate thread.
        box: dict[str, Any] = {}
        t = threading.Thread(target=lambda: box.setdefault("r", asyncio.run(self._generate_all(requests))))
        t.start()
        t.join()
        return box["r"]

    def score(self, requests: list[ChatRequest]) -> list[Generation]:
        """Score requests (``score_labels`` set) ask for one token with its top log-probabilities."""
        return self.generate(requests)

    async def _generate_all(self, requests: list[ChatRequest]) -> list[Generation]:
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout_s,
                                    max_retries=0)
        sem = asyncio.Semaphore(self.max_concurrency)
        try:
            return list(await asyncio.gather(*(self._one(client, sem, r) for r in requests)))
        finally:
            await client.close()

    async def _one(self, client: openai.AsyncOpenAI, sem: asyncio.Semaphore, req: ChatRequest) -> Generation:
        kwargs: dict[str, Any] = {
            "model": self.model_id,
            "messages": req.messages,
            "temperature": req.sampling.temperature,
            "top_p": req.sampling.top_p,
            "max_tokens": req.sampling.max_new_tokens,
            "seed": req.sampling.seed,
        }
        if req.score_labels is not None:  # one token, with the top alternatives' log-probabilities
            kwargs.update(max_tokens=1, temperature=0.0, top_p=1.0, logprobs=True, top_logprobs=20)
        if req.json_schema is not None and self.response_format:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": req.schema_name or "output", "schema": req.json_schema}}
        last_error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with sem:
                    resp = await client.chat.completions.create(**kwargs)
                if not getattr(resp, "choices", None):
                    # The SDK hands back the raw body when it is not JSON (a proxy's HTML page…).
                    raise _BadBody(f"response body is not a chat completion: {redact(str(resp), self._api_key)[:120]!r}")
                choice = resp.choices[0]
                usage = resp.usage
                return Generation(text=choice.message.content or "", finish_reason=choice.finish_reason,
                                  tokens_in=usage.prompt_tokens if usage else None,
                                  tokens_out=usage.completion_tokens if usage else None, attempts=attempt,
                                  label_logprobs=label_logprobs(choice, req.score_labels) if req.score_labels
                                  else None)
            except openai.BadRequestError as exc:
                if "response_format" in kwargs and "response_format" in str(exc).lower():
                    # This endpoint does not do JSON schema: ask again without it.
                    log.warning(f"{redact(str(self.base_url))}: response_format rejected; falling back to prompt + parser")
                    kwargs.pop("response_format")
                    continue
                return Generation(error=_describe(exc, self._api_key), attempts=attempt)
            except _RETRYABLE as exc:
                last_error = _describe(exc, self._api_key)
                if attempt == self.max_attempts:
                    break
                wait = _retry_after(exc)
                if wait is None:
                    wait = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
                    wait *= 0.5 + random.random()  # full jitter keeps clients from retrying in step
                log.info(f"{req.item or 'request'}: {last_error}; retry {attempt}/{self.max_attempts - 1} in {wait:.2f}s")
                await asyncio.sleep(min(wait, self.backoff_max_s))
            except (openai.APIError, ValueError) as exc:  # 4xx other than the above, unparseable bodies
                return Generation(error=_describe(exc, self._api_key), attempts=attempt)
        return Generation(error=f"gave up after {self.max_attempts} attempts: {last_error}", attempts=self.max_attempts)
