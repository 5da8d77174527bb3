"""The call log as a cache: re-runs make no model calls; a killed run resumes with only the missing calls."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resources.llm import LLMRuntime
from resources.llm.calllog import CallLog
from tests.scripted_backend import ScriptedBackend, requests

ROOT = Path(__file__).resolve().parents[1]


def _rt(wh, backend, cache="read_write", run_id="r"):
    return LLMRuntime(backend, CallLog(wh, run_id=run_id, asset_key="candidates", cache=cache, flush_every=5))


def test_a_second_run_of_the_same_batch_makes_zero_model_calls(wh):
    first = ScriptedBackend()
    out1 = _rt(wh, first).chat(requests(12))
    again = ScriptedBackend()
    rt = _rt(wh, again, run_id="r2")
    out2 = rt.chat(requests(12))
    assert first.calls == 12 and again.calls == 0
    assert [r.text for r in out2] == [r.text for r in out1]
    assert rt.stats.cache_hits == 12 and rt.stats.model_calls == 0
    assert wh.count("llm_calls") == 12


def test_identical_requests_in_one_batch_are_one_call(wh):
    backend = ScriptedBackend()
    reqs = requests(3) + requests(3)
    out = _rt(wh, backend).chat(reqs)
    assert backend.calls == 3 and len(out) == 6 and out[0].text == out[3].text


def test_cache_modes(wh):
    _rt(wh, ScriptedBackend()).chat(requests(4))
    write_only = ScriptedBackend()
    _rt(wh, write_only, cache="write_only").chat(requests(4))
    assert write_only.calls == 4
    off = ScriptedBackend()
    before = wh.count("llm_calls")
    _rt(wh, off, cache="off").chat(requests(6))
    assert off.calls == 6 and wh.count("llm_calls") == before


def test_calls_are_checkpointed_during_a_batch(wh):
    _rt(wh, ScriptedBackend()).chat(requests(12))
    checkpoints = wh.snapshots().filter(asset_key="candidates/llm_calls")
    assert checkpoints.height == 3  # 5 + 5 + 2


def test_a_run_killed_mid_batch_resumes_with_only_the_missing_calls(wh, zhufu_home):
    n = 40
    wh.migrate()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.scripted_backend", str(zhufu_home), str(n)], cwd=ROOT, env=env)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        done = wh.count("llm_calls")
        if done >= 10:
            break
        assert proc.poll() is None, "worker finished before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = wh.count("llm_calls")
    assert 10 <= recorded < n

    backend = ScriptedBackend()
    rt = _rt(wh, backend, run_id="resumed")
    results = rt.chat(requests(n))
    assert backend.calls == n - recorded
    assert all(r.ok for r in results)
    counts = wh.sql("SELECT count(*) AS n, count(DISTINCT request_key) AS keys FROM llm_calls").row(0, named=True)
    assert counts == {"n": n, "keys": n}
