"""The call log: every LLM request and its response as an ``llm_calls`` event, and the cache.

Calls are checkpointed to the warehouse every ``flush_every`` results (each checkpoint is its
own snapshot, named ``<asset>/llm_calls``), so a run killed mid-batch keeps its finished calls
and the re-run asks the model only for the missing ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from resources.llm.types import ChatResult
from warehouse.schema import LLMCallRow

if TYPE_CHECKING:
    from warehouse.store import Warehouse

CacheMode = Literal["read_write", "write_only", "off"]
_LOOKUP_CHUNK = 500


class CallLog:
    def __init__(self, warehouse: Warehouse | None, *, run_id: str, asset_key: str,
                 cache: CacheMode = "read_write", flush_every: int = 16):
        self.warehouse = warehouse
        self.run_id, self.asset_key, self.cache = run_id, asset_key, cache
        self.flush_every = flush_every
        self._pending: list[LLMCallRow] = []

    def lookup(self, keys: Iterable[str]) -> dict[str, LLMCallRow]:
        """Recorded answers (ok or invalid) for these request keys. Errors are not answers."""
        if self.warehouse is None or self.cache != "read_write":
            return {}
        keys = sorted(set(keys))
        found: dict[str, LLMCallRow] = {}
        fields = list(LLMCallRow.model_fields)
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[i : i + _LOOKUP_CHUNK]
            df = self.warehouse.sql(
                f"SELECT {', '.join(fields)} FROM llm_calls_latest "
                "WHERE status IN ('ok', 'invalid') AND list_contains(?, request_key)",
                [chunk],
            )
            for row in df.iter_rows(named=True):
                found[row["request_key"]] = LLMCallRow.model_validate(
                    {**row, "request": _json(row["request"]), "parsed": _json(row["parsed"])})
        return found

    def record(self, row: LLMCallRow) -> None:
        if self.warehouse is None or self.cache == "off":
            return
        self._pending.append(row)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.warehouse is None or not self._pending:
            return
        rows, self._pending = self._pending, []
        self.warehouse.append(rows, run_id=self.run_id, asset_key=f"{self.asset_key}/llm_calls")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def result_from_row(row: LLMCallRow) -> ChatResult:
    return ChatResult(request_key=row.request_key, status=row.status, text=row.response,  # type: ignore[arg-type]
                      parsed=row.parsed, error=row.error, tokens_in=row.tokens_in, tokens_out=row.tokens_out,
                      latency_ms=row.latency_ms, cached=True)
