"""The LLM runtime: backends (local transformers, OpenAI-compatible, vLLM), structured output,
the call log/cache and accounting. No Dagster here; ``resources.llm`` wraps it as a resource."""

from resources.llm.runtime import Accounting, LLMRuntime, Prices
from resources.llm.types import ChatRequest, ChatResult, Generation, Sampling

__all__ = ["Accounting", "ChatRequest", "ChatResult", "Generation", "LLMRuntime", "Prices", "Sampling"]
