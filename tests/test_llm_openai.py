"""The openai backend against a real HTTP server on 127.0.0.1 that injects faults."""

import logging

import pytest
from pydantic import BaseModel

from resources.llm import ChatRequest, LLMRuntime
from resources.llm.calllog import CallLog
from resources.llm.openai_backend import OpenAIBackend
from tests.fake_openai_server import FakeOpenAI

SECRET = "sk-test-SECRET-1234567890"


class Verdict(BaseModel):
    label: int
    reason: str


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def _runtime(server, wh, **kw):
    backend = OpenAIBackend("judge-model", base_url=server.base_url, api_key=SECRET, timeout_s=1.0,
                            max_attempts=3, backoff_base_s=0.05, backoff_max_s=2.0, **kw)
    calls = CallLog(wh, run_id="run-1", asset_key="verdicts", flush_every=4)
    return LLMRuntime(backend, calls, secrets=(SECRET,))


def _req(text, item=None):
    return ChatRequest(messages=[{"role": "user", "content": text}], item=item or text)


MARKERS = ["ok", "[429]", "[500x2]", "[500always]", "[timeout]", "[timeout-once]", "[truncated]",
           "[nonjson]", "[prose]", "[401]", "[no-rf]"]
EXPECTED = {"ok": "ok", "[429]": "ok", "[500x2]": "ok", "[500always]": "error", "[timeout]": "error",
            "[timeout-once]": "ok", "[truncated]": "error", "[nonjson]": "error", "[prose]": "ok",
            "[401]": "error", "[no-rf]": "ok"}


def test_every_request_ends_recorded_as_success_or_failure_with_reason(server, wh, caplog):
    caplog.set_level(logging.DEBUG)
    rt = _runtime(server, wh)
    results = rt.structured([_req(f"请评价 {m}", item=m) for m in MARKERS], Verdict)
    assert {r.item: r.status for r in results} == EXPECTED
    for r in results:
        if r.ok:
            assert Verdict.model_validate(r.parsed).label == 1
        else:
            assert r.error  # a reason, never empty
    by_item = {r.item: r for r in results}
    assert "gave up after 3 attempts" in by_item["[500always]"].error
    assert "HTTP 500" in by_item["[500always]"].error
    assert "Timeout" in by_item["[timeout]"].error
    assert "HTTP 401" in by_item["[401]"].error

    # retries are bounded: at most max_attempts requests per item (+1 repair for prose, +1 fallback for no-rf)
    assert server.hits["[500always]"] == 3 and server.hits["[timeout]"] == 3
    assert server.hits["[429]"] == 2 and server.hits["[500x2]"] == 3
    assert server.hits["[prose]"] == 2 and server.hits["[no-rf]"] == 2
    assert server.hits["[401]"] == 1  # not retryable

    stored = wh.sql("SELECT request->>'item' AS item, status, error FROM llm_calls_latest")
    assert dict(zip(stored["item"], stored["status"], strict=True)) == EXPECTED
    assert stored.filter(stored["status"] != "ok")["error"].null_count() == 0
    assert rt.stats.errors == 5 and rt.stats.ok == 6 and rt.stats.repairs == 1


def test_the_api_key_reaches_the_server_but_no_table_log_or_metadata(server, wh, caplog):
    caplog.set_level(logging.DEBUG)
    rt = _runtime(server, wh)
    rt.structured([_req("请评价 [401]"), _req("请评价 ok"), _req("请评价 [500always]")], Verdict)
    assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)
    for table in ("llm_calls", "materializations"):
        dump = wh.sql(f"SELECT * FROM {table}").write_csv()
        assert SECRET not in dump
    assert "***" in wh.sql("SELECT error FROM llm_calls WHERE error LIKE '%401%'")["error"][0]
    assert SECRET not in caplog.text
    assert SECRET not in str(rt.stats.as_metadata())
    assert SECRET not in repr(rt.backend)


def test_retry_after_is_honoured(server, wh):
    import time

    rt = _runtime(server, wh)
    t0 = time.perf_counter()
    (r,) = rt.chat([_req("你好 [429]")])
    assert r.ok and time.perf_counter() - t0 >= 1.0  # waited the server's Retry-After: 1


def test_a_second_run_answers_from_the_call_log(server, wh):
    reqs = [_req(f"第{i}句 ok") for i in range(6)]
    first = _runtime(server, wh).chat(reqs)
    assert server.hits["ok"] == 6
    again = _runtime(server, wh)
    second = again.chat(reqs)
    assert server.hits["ok"] == 6 and again.stats.model_calls == 0 and again.stats.cache_hits == 6
    assert [r.text for r in second] == [r.text for r in first] and all(r.cached for r in second)


def test_failed_calls_are_retried_on_the_next_run_but_answers_are_not(server, wh):
    _runtime(server, wh).chat([_req("a [500always]"), _req("b ok")])
    rt = _runtime(server, wh)
    rt.chat([_req("a [500always]"), _req("b ok")])
    assert rt.stats.model_calls == 1 and rt.stats.cache_hits == 1
