"""Secrets never reach a log line, a stored row, an error string or metadata.

An API key planted in an endpoint's 429 and 5xx bodies (providers do echo keys), and a password in
the catalog string, are looked for everywhere they could pass.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

from resources.llm import ChatRequest, LLMRuntime
from resources.llm.calllog import CallLog
from resources.llm.openai_backend import OpenAIBackend
from warehouse import Warehouse, WarehouseConfig, WarehouseError

KEY = "sk-test-PLANTEDKEY-0123456789abcdef"
OTHER_KEY = "sk-live-ANOTHERKEY-9876543210"  # not ours, still a key: masked by its shape
PASSWORD = "PLANTED-pa55word"


class Verdict(BaseModel):
    label: int
    reason: str


class EchoingServer:
    """An OpenAI-compatible endpoint whose error bodies echo the caller's key.

    [429-echo]  429 (Retry-After: 0) echoing the key, then 200
    [500-echo]  500 every time, echoing the key deep in a long message (past any 300-char cut)
    [html-echo] 200 with an HTML page echoing the key
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                key = auth.removeprefix("Bearer ")
                user = [m["content"] for m in req["messages"] if m["role"] == "user"][0]
                marker = next((m for m in ("[429-echo]", "[500-echo]", "[html-echo]") if m in user), "ok")
                with fake.lock:
                    fake.hits[marker] += 1
                    n = fake.hits[marker]
                if marker == "[429-echo]" and n == 1:
                    body = {"error": {"message": f"Rate limit for key {key} ({auth}) reached"}}
                    return self._send(429, json.dumps(body).encode(), headers={"Retry-After": "0"})
                if marker == "[500-echo]":
                    msg = "upstream failed " + "x" * 290 + f" while serving key {key}; also {OTHER_KEY}"
                    return self._send(500, json.dumps({"error": {"message": msg}}).encode())
                if marker == "[html-echo]":
                    return self._send(200, f"<html>proxy error, {auth}</html>".encode(), "text/html")
                content = json.dumps({"label": 1, "reason": "ok"})
                body = {"id": "c", "object": "chat.completion", "created": 0, "model": req["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}
                return self._send(200, json.dumps(body).encode())

        return Handler


@pytest.fixture
def server():
    s = EchoingServer()
    yield s
    s.close()


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def test_an_api_key_echoed_in_429_and_500_bodies_reaches_no_log_row_or_error(server, wh, caplog):
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend("judge", base_url=server.base_url, api_key=KEY, timeout_s=5.0, max_attempts=2,
                            backoff_base_s=0.01, backoff_max_s=0.05)
    # No secrets handed to the runtime: the backend itself must not let the key out.
    rt = LLMRuntime(backend, CallLog(wh, run_id="run-1", asset_key="verdicts", flush_every=2))
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"评价 {m}"}], item=m)
            for m in ("[429-echo]", "[500-echo]", "[html-echo]")]
    results = {r.item: r for r in rt.structured(reqs, Verdict)}

    assert results["[429-echo]"].ok and server.hits["[429-echo]"] == 2
    assert results["[500-echo]"].status == "error" and server.hits["[500-echo]"] == 2
    assert results["[html-echo]"].status == "error"
    logged = _everything_logged(caplog)
    assert "HTTP 429" in logged and "HTTP 500" in logged and "retry 1/1" in logged  # the lines exist
    stored = wh.sql("SELECT * FROM llm_calls").write_csv() + wh.sql("SELECT * FROM materializations").write_csv()
    errors = " ".join(r.error or "" for r in results.values())
    assert "HTTP 500" in errors and "***" in errors
    for secret in (KEY, KEY[:16], OTHER_KEY):
        assert secret not in logged
        assert secret not in stored
        assert secret not in errors
        assert secret not in json.dumps(rt.stats.as_metadata())


# ---------------------------------------------------------------- the catalog string

CATALOGS = [
    f"postgres:dbname=zhufu host=127.0.0.1 port=1 user=zhufu password={PASSWORD} connect_timeout=1",
    f"postgres:dbname=zhufu host=127.0.0.1 port=1 user=zhufu password = '{PASSWORD}'",
    f"postgres:postgresql://zhufu:{PASSWORD}@127.0.0.1:1/zhufu",
]


@pytest.mark.parametrize("catalog", CATALOGS)
def test_a_catalog_password_is_masked_in_describe(catalog, tmp_path):
    config = WarehouseConfig(catalog=catalog, data_path=str(tmp_path) + "/", lock_dir=None)
    assert PASSWORD not in config.describe() and "***" in config.describe()
    assert PASSWORD not in config.redact(f"error at {catalog}: auth failed for {PASSWORD}")


@pytest.mark.parametrize("catalog", CATALOGS)
def test_a_catalog_password_is_in_no_error_or_log(catalog, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wh = Warehouse(WarehouseConfig(catalog=catalog, data_path=str(tmp_path) + "/", lock_dir=None))
    with pytest.raises(WarehouseError) as info:
        wh.sql("SELECT 1")
    shown = "".join(traceback.format_exception(info.value))  # what Dagster and a terminal print
    assert "cannot open the warehouse" in shown
    assert PASSWORD not in shown and PASSWORD not in _everything_logged(caplog)


def test_the_cli_does_not_print_a_catalog_password(tmp_path):
    env = {**os.environ, "ZHUFU_HOME": str(tmp_path), "ZHUFU_CATALOG": CATALOGS[0]}
    proc = subprocess.run([sys.executable, "-m", "warehouse", "sql", "SELECT 1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "error" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
