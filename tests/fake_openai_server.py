"""A small OpenAI-compatible HTTP server on 127.0.0.1 that injects faults, for tests.

The last user message picks the behaviour by marker:
  [429]          429 with Retry-After: 1 on the first request, then 200
  [500x2]        500 twice, then 200
  [500always]    500 every time
  [timeout]      answers after 3 s every time (longer than the client's timeout)
  [timeout-once] slow the first time, then 200
  [truncated]    promises a longer body than it sends, then closes
  [nonjson]      200 with an HTML body
  [prose]        200, content is not JSON; a repair request (with an assistant turn) gets JSON
  [401]          401 whose body echoes the API key, as some providers do
  [no-rf]        400 when response_format is sent, 200 without it
A request with ``logprobs`` gets one token and its top log-probabilities: 是 likely when the user
message contains 【好】, 否 likely otherwise (what a judge endpoint such as vLLM returns).
otherwise 200 with a JSON answer ({"label": 1, "reason": …} for schema requests, text otherwise).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self):
        self.hits: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      content_type: str = "application/json", length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(length if length is not None else len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.auth_headers.append(self.headers.get("Authorization", ""))
                msgs = req["messages"]
                user = [m["content"] for m in msgs if m["role"] == "user"][0]
                marker = next((m for m in ("[429]", "[500x2]", "[500always]", "[timeout-once]", "[timeout]",
                                           "[truncated]", "[nonjson]", "[prose]", "[401]", "[no-rf]")
                               if m in user), "ok")
                with fake.lock:
                    fake.hits[marker] += 1
                    n = fake.hits[marker]
                if marker == "[429]" and n == 1:
                    return self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"})
                if marker == "[500x2]" and n <= 2 or marker == "[500always]":
                    return self._send(500, b'{"error": {"message": "upstream exploded"}}')
                if marker == "[timeout]" or (marker == "[timeout-once]" and n == 1):
                    time.sleep(3)
                if marker == "[truncated]":
                    self._send(200, b'{"id": "x", "choi', length=500)
                    self.close_connection = True
                    return None
                if marker == "[nonjson]":
                    return self._send(200, b"<html>bad gateway</html>", content_type="text/html")
                if marker == "[401]":
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
                    return self._send(401, body)
                if marker == "[no-rf]" and "response_format" in req:
                    return self._send(400, b'{"error": {"message": "response_format is not supported"}}')
                wants_json = "response_format" in req or marker == "[no-rf]"
                if marker == "[prose]" and not any(m["role"] == "assistant" for m in msgs):
                    content = "好的，这是一句很好的祝福。"
                elif wants_json or marker == "[prose]":
                    content = json.dumps({"label": 1, "reason": f"echo {user[:20]}"}, ensure_ascii=False)
                else:
                    content = f"回答：{user}"
                choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                if req.get("logprobs"):
                    good = "【好】" in user
                    top = [{"token": "是", "logprob": -0.1 if good else -2.5, "bytes": None},
                           {"token": "否", "logprob": -2.5 if good else -0.1, "bytes": None},
                           {"token": "好", "logprob": -6.0, "bytes": None}][: req.get("top_logprobs") or 1]
                    top.sort(key=lambda t: -t["logprob"])
                    choice = {"index": 0, "finish_reason": "length",
                              "message": {"role": "assistant", "content": top[0]["token"]},
                              "logprobs": {"content": [{**top[0], "top_logprobs": top}]}}
                body = {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": req["model"],
                    "choices": [choice],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                }
                return self._send(200, json.dumps(body, ensure_ascii=False).encode())

        return Handler
