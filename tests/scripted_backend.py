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


class ScriptedPathB:
    """Answers Path B's agents by schema; the Detector (a score request) calls anything "BAD" good until
    its principles contain 识破BAD; "TRICKY" it always gets wrong (so every iteration has errors).
    The S_D optimizer adds 识破BAD at iteration 1, replaces rule 1 with a harmful one at iteration 2,
    and at iteration 3 asks to replace a rule 12 that does not exist."""

    name = "scripted"
    model_id = "scripted-path-b"
    constrains_output = True

    def __init__(self, crash_on: str | None = None):
        self.crash_on = crash_on
        self.items: list[str] = []

    def _answer(self, r: ChatRequest) -> dict:
        if r.schema_name == "FlawedGreeting":
            return {"greeting": "BAD 平庸的祝福", "flaws": "套话堆砌"}
        if r.schema_name == "Reflection":
            return {"analysis": "漏看了缺陷", "suggestion": "识破BAD"}
        if r.schema_name == "RuleEdit":
            iteration = int(r.item.rsplit("-", 1)[1])
            if "S_G" in r.item:
                return {"action": "add", "suggestion": 1, "rule": f"更隐蔽的写法{iteration}"}
            if iteration == 1:  # the Reflector's suggestion, adopted in its own words (the rule is left empty)
                return {"action": "add", "suggestion": 1, "rule": ""}
            if iteration == 2:
                return {"action": "replace", "suggestion": 1, "index": 1, "rule": "全部判1"}
            return {"action": "replace", "suggestion": 1, "index": 12, "rule": "第十二条规则"}  # no rule 12: refused
        raise AssertionError(f"unexpected schema {r.schema_name}")

    @staticmethod
    def detect(r: ChatRequest) -> int:
        """The Detector's verdict on a judge prompt (``agents.judging``): 1 = excellent."""
        system, user = r.messages[0]["content"], r.messages[-1]["content"]
        response = user.split("【祝福语】")[-1]
        if "全部判1" in system or "TRICKY" in response:
            return 1
        if "BAD" in response:
            return 0 if "识破BAD" in system else 1
        return 1

    def score(self, requests: list[ChatRequest]) -> list[Generation]:
        out = []
        for r in requests:
            self.items.append(r.item or "")
            if self.crash_on and r.item == self.crash_on:
                raise RuntimeError(f"simulated crash at {r.item}")
            yes = self.detect(r)
            out.append(Generation(text=str(yes), tokens_in=5, tokens_out=0,
                                  label_logprobs=(-0.1, -2.5) if yes else (-2.5, -0.1)))
        return out

    def generate(self, requests: list[ChatRequest]) -> list[Generation]:
        import json

        out = []
        for r in requests:
            self.items.append(r.item or "")
            if self.crash_on and r.item == self.crash_on:
                raise RuntimeError(f"simulated crash at {r.item}")
            out.append(Generation(text=json.dumps(self._answer(r), ensure_ascii=False), tokens_in=5, tokens_out=5))
        return out
