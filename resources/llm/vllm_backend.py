"""The ``vllm`` backend: in-process ``vllm.LLM`` on CUDA (optional extra ``zhufu[gpu]``).

Guided (JSON-schema) decoding through vLLM's structured outputs; one ``SamplingParams`` per
request, so seeds and temperatures are per request as on the other backends.
"""

from __future__ import annotations

from typing import Any

from resources.llm.types import ChatRequest, Generation


class VLLMBackend:
    name = "vllm"
    constrains_output = True

    def __init__(self, model: str, *, model_id: str | None = None, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = 4096, dtype: str = "auto"):
        try:
            import vllm
        except ImportError as exc:
            raise RuntimeError("the vllm backend needs vLLM on a CUDA machine: pip install -e '.[gpu]'") from exc
        self._vllm = vllm
        self.model_id = model_id or model
        self.llm = vllm.LLM(model=model, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, dtype=dtype)

    def _params(self, req: ChatRequest) -> Any:
        vllm = self._vllm
        kwargs: dict[str, Any] = {"temperature": req.sampling.temperature, "top_p": req.sampling.top_p,
                                  "max_tokens": req.sampling.max_new_tokens, "seed": req.sampling.seed}
        if req.json_schema is not None:
            params_mod = vllm.sampling_params
            if hasattr(params_mod, "StructuredOutputsParams"):  # vLLM >= 0.11
                kwargs["structured_outputs"] = params_mod.StructuredOutputsParams(json=req.json_schema)
            else:
                kwargs["guided_decoding"] = params_mod.GuidedDecodingParams(json=req.json_schema)
        return vllm.SamplingParams(**kwargs)

    def score(self, requests: list[ChatRequest]) -> list[Generation]:
        """One token per request with its 20 most likely alternatives; the answers' first tokens looked up."""
        tok = self.llm.get_tokenizer()
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=20)
        outputs = self.llm.chat([r.messages for r in requests], params, use_tqdm=True)
        gens = []
        for out, req in zip(outputs, requests, strict=True):
            top = out.outputs[0].logprobs[0] if out.outputs[0].logprobs else {}
            floor = min([-30.0, *(lp.logprob for lp in top.values())])
            ids = [tok.encode(x, add_special_tokens=False)[0] for x in req.score_labels or ("是", "否")]
            lps = tuple(top[i].logprob if i in top else floor for i in ids)
            gens.append(Generation(text=f"{lps[0]:.4f} {lps[1]:.4f}", tokens_in=len(out.prompt_token_ids or []),
                                   tokens_out=0, finish_reason="score", label_logprobs=lps))  # type: ignore[arg-type]
        return gens

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        outputs = self.llm.chat([r.messages for r in requests], [self._params(r) for r in requests],
                                use_tqdm=True)
        gens = []
        for out in outputs:
            c = out.outputs[0]
            gens.append(Generation(text=c.text, tokens_in=len(out.prompt_token_ids or []),
                                   tokens_out=len(c.token_ids), finish_reason=c.finish_reason))
        return gens
