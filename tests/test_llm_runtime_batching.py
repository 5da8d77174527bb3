"""The runtime hands the backend batches of the backend's own size (not the checkpoint interval), and
a repair retry that never got an answer is an error (retried next run), not a cached invalid answer."""

from pydantic import BaseModel

from resources.llm import LLMRuntime
from resources.llm.calllog import CallLog
from resources.llm.types import ChatRequest, Generation
from tests.scripted_backend import requests


class SizedBackend:
    name, model_id, constrains_output = "sized", "sized-model", True

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.chunks: list[int] = []

    def generate(self, reqs: list[ChatRequest]) -> list[Generation]:
        self.chunks.append(len(reqs))
        return [Generation(text="ok") for _ in reqs]


def test_batches_reach_the_backends_batch_size_while_checkpoints_stay_small(wh):
    backend = SizedBackend(batch_size=40)
    rt = LLMRuntime(backend, CallLog(wh, run_id="r", asset_key="a", flush_every=16))
    rt.chat(requests(50))
    assert backend.chunks == [40, 10]          # not 16 + 16 + 16 + 2
    assert wh.count("llm_calls") == 50


class Answer(BaseModel):
    label: int


class FlakyRepair:
    """Answers in prose first (unparseable), then fails at the transport level on the repair."""

    name, model_id, constrains_output = "flaky", "flaky-model", False

    def __init__(self):
        self.calls = 0

    def generate(self, reqs: list[ChatRequest]) -> list[Generation]:
        self.calls += len(reqs)
        if any(m["role"] == "assistant" for m in reqs[0].messages):  # the repair request
            return [Generation(error="APIConnectionError: connection reset") for _ in reqs]
        return [Generation(text="好的，这是一句很好的祝福。") for _ in reqs]


def test_a_transport_error_during_the_repair_is_not_cached(wh):
    req = [ChatRequest(messages=[{"role": "user", "content": "判断"}], item="x")]
    first = FlakyRepair()
    (res,) = LLMRuntime(first, CallLog(wh, run_id="r1", asset_key="a")).structured(req, Answer)
    assert res.status == "error" and "repair failed" in res.error
    again = FlakyRepair()
    LLMRuntime(again, CallLog(wh, run_id="r2", asset_key="a")).structured(req, Answer)
    assert again.calls == 2  # asked again (answer + repair): an error is never an answer


class Other(BaseModel):
    points: list[str]


class SchemaEcho:
    """Answers each request with JSON valid for the schema it was sent with."""

    name, model_id, constrains_output = "schema-echo", "schema-echo-model", True
    batch_size = 8

    def __init__(self):
        self.chunks: list[int] = []

    def generate(self, reqs: list[ChatRequest]) -> list[Generation]:
        self.chunks.append(len(reqs))
        return [Generation(text='{"label": 1}' if r.schema_name == "Answer" else '{"points": ["好"]}') for r in reqs]


def test_requests_with_different_schemas_share_one_batch_and_parse_each_with_its_own(wh):
    backend = SchemaEcho()
    rt = LLMRuntime(backend, CallLog(wh, run_id="r", asset_key="a"))
    out = rt.structured(requests(6), [Answer, Other, Answer, Other, Answer, Other])
    assert backend.chunks == [6]  # one batch for both agents
    assert [r.parsed for r in out[:2]] == [{"label": 1}, {"points": ["好"]}]
    assert all(r.ok for r in out)


def test_a_long_request_list_reports_calls_done_and_time_left():
    backend = SizedBackend(batch_size=4)
    rt = LLMRuntime(backend, CallLog(None, run_id="r", asset_key="a", flush_every=1))
    lines: list[str] = []
    rt.progress = lines.append
    rt.chat(requests(10))
    assert [x.split(":")[1].split(" model")[0].strip() for x in lines] == ["4/10", "8/10", "10/10"]
    assert "s left" in lines[0] and "s left" not in lines[-1]
    lines.clear()
    rt.chat(requests(3))  # one batch: nothing to follow
    assert lines == []
