"""A scripted LLM double for control-flow tests (cache, resume). Never used by the product."""

from __future__ import annotations

import sys
import time

from resources.llm.types import ChatRequest, Generation


class ScriptedBackend:
    name = "scripted"
    model_id = "scripted-echo"
    constrains_output = True

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            time.sleep(self.delay_s)
            self.calls += 1
            out.append(Generation(text=f"echo:{r.messages[-1]['content']}", tokens_in=3, tokens_out=2))
        return out


def requests(n: int) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": f"第{i}条"}], item=f"item-{i}") for i in range(n)]


if __name__ == "__main__":  # the worker that the resume test kills
    from resources.llm import LLMRuntime
    from resources.llm.calllog import CallLog
    from warehouse import Warehouse, WarehouseConfig

    home, n = sys.argv[1], int(sys.argv[2])
    wh = Warehouse(WarehouseConfig.embedded(home))
    rt = LLMRuntime(ScriptedBackend(delay_s=0.1), CallLog(wh, run_id="killed", asset_key="candidates", flush_every=5))
    rt.chat(requests(n))
