"""LLMResource: the Dagster resource around the LLM runtime (resources/llm/)."""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.llm.calllog import CacheMode, CallLog
from resources.llm.runtime import LLMRuntime, Prices
from resources.llm.types import Backend
from resources.model_store import EMBEDDED_MODEL, ModelStore
from resources.warehouse import WarehouseResource

# Loaded models are kept per process: several assets in one run share one copy.
_BACKENDS: dict[tuple, Backend] = {}


class LLMResource(dg.ConfigurableResource):
    """One runtime for every agent: ``local`` transformers (embedded default), ``openai``
    (any OpenAI-compatible endpoint) or in-process ``vllm``.

    The API key is read from an environment variable at run time (``dg.EnvVar``); it is never
    logged, stored in a table or shown in metadata.
    """

    warehouse: WarehouseResource
    backend: Literal["local", "openai", "vllm"] = Field(default="local", description="env ZHUFU_LLM_BACKEND")
    model: str = Field(default=EMBEDDED_MODEL, description="model name, path or hub id (env ZHUFU_LLM_MODEL)")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (env ZHUFU_LLM_BASE_URL)")
    api_key: str | None = Field(default=None, description="set with dg.EnvVar('OPENAI_API_KEY')")
    cache: CacheMode = "read_write"
    batch_size: int = Field(default=16, description="local backend: requests per forward batch")
    max_concurrency: int = Field(default=8, description="openai backend: requests in flight")
    timeout_s: float = 60.0
    max_attempts: int = 5
    flush_every: int = Field(default=16, description="checkpoint the call log every N calls")
    price_input_per_m: float | None = Field(default=None, description="USD per 1M input tokens (cost estimate)")
    price_output_per_m: float | None = None
    model_store: str | None = Field(default=None, description="model store directory (default $ZHUFU_HOME/models)")

    _runtimes: list[LLMRuntime] = PrivateAttr(default_factory=list)

    @classmethod
    def from_env(cls, warehouse: WarehouseResource) -> LLMResource:
        api_key_var = os.environ.get("ZHUFU_LLM_API_KEY_VAR", "OPENAI_API_KEY")
        return cls(
            warehouse=warehouse,
            backend=os.environ.get("ZHUFU_LLM_BACKEND", "local"),  # type: ignore[arg-type]
            model=os.environ.get("ZHUFU_LLM_MODEL", EMBEDDED_MODEL),
            base_url=os.environ.get("ZHUFU_LLM_BASE_URL") or None,
            api_key=dg.EnvVar(api_key_var) if os.environ.get(api_key_var) else None,
        )

    def build_backend(self, model: str | None = None) -> Backend:
        model = model or self.model
        key = (self.backend, model, self.base_url, self.batch_size)
        if self.backend == "openai":
            from resources.llm.openai_backend import OpenAIBackend

            # Not cached: it holds the key, and is cheap to make.
            return OpenAIBackend(model, base_url=self.base_url, api_key=self.api_key,
                                 max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
                                 max_attempts=self.max_attempts)
        if key not in _BACKENDS:
            path = ModelStore(self.model_store).resolve(model)
            if self.backend == "vllm":
                from resources.llm.vllm_backend import VLLMBackend

                _BACKENDS[key] = VLLMBackend(path, model_id=model)
            else:
                from resources.llm.local import LocalBackend

                _BACKENDS[key] = LocalBackend(path, model_id=model, batch_size=self.batch_size)
        return _BACKENDS[key]

    def runtime(self, context: dg.AssetExecutionContext | dg.OpExecutionContext,
                model: str | None = None) -> LLMRuntime:
        """A runtime for this run/asset; its calls are logged and cached in ``llm_calls``."""
        asset_key = context.asset_key.to_user_string() if getattr(context, "has_assets_def", False) else "op"
        calls = CallLog(self.warehouse.get(), run_id=context.run_id, asset_key=asset_key,
                        cache=self.cache, flush_every=self.flush_every)
        prices = (Prices(self.price_input_per_m or 0.0, self.price_output_per_m or 0.0)
                  if self.price_input_per_m is not None or self.price_output_per_m is not None else None)
        rt = LLMRuntime(self.build_backend(model), calls, prices=prices,
                        secrets=(self.api_key,) if self.api_key else ())
        rt.progress = context.log.info  # long request lists say how far they are in the asset's log
        self._runtimes.append(rt)
        return rt
