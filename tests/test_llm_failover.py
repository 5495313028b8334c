"""Synthesis over two OpenAI-compatible servers when one goes away mid-stage.

Two real HTTP servers (separate processes, stdlib `http.server`, HTTP/1.1 keep-alive) speak `/v1/chat/completions`
and answer deterministically (`answer to <last message> [seed <seed>]`, the same on either server). Server A
kills itself (`os._exit`, no response, its sockets reset by the kernel) when its 15th request arrives, while other
requests are in flight on it. The stage (60 generations, then 60 follow-ups on their answers) must finish with every
answer right, the requests in flight on A retried on B, A left out of the routing afterwards, and the response cache
holding each answer exactly once, so that a rerun generates nothing.

The server is shared with tests/test_reliability_cli.py: it records the Authorization header of every request,
can answer like a ReMixer LLM (`mode` 'remixer': a Yes for cleaning, a query, a score, a reasoning), and can refuse a
prompt over `max_chars` characters with HTTP 400 and vLLM's context-length message, as a server run with a small
`--max-model-len` does."""
import json, os, sqlite3, subprocess, sys, time
from pathlib import Path

import httpx
import pytest

from reasonembed.llm import ResponseCache, SamplingParams, cache_key, request_seed
from reasonembed.llm_backends import OpenAILLM

SERVER = r'''
import hashlib, http.server, json, os, sys, threading, time
port_file, log_file, die_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
mode, max_chars = (sys.argv[4], int(sys.argv[5])) if len(sys.argv) > 5 else ("echo", 0)
host = sys.argv[6] if len(sys.argv) > 6 else "127.0.0.1"
log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
lock, seen = threading.Lock(), [0]
def note(event, content): os.write(log_fd, (json.dumps([event, content]) + "\n").encode())
def remixer_answer(content):
    h = hashlib.md5(content.encode()).hexdigest()
    if "<score>" in content: return f"<score>{1 + int(h, 16) % 5}</score>"
    if "Yes or No" in content: return "Yes"
    if "Write only the post itself" in content:
        return f"Why does my loop number {h[:6]} stop early when an exception is raised inside a try block?"
    if "an expert thinks about this post" in content: return "The expert would consider loops, exceptions and control flow."
    return f"answer to {content}"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path == "/v1/models": return self._send(200, {"object": "list", "data": [{"id": "toy", "object": "model"}]})
        self._send(404, {"object": "error", "message": "Not Found"})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions": return self._send(404, {"object": "error", "message": "Not Found"})
        content = body["messages"][-1]["content"]
        note("auth", self.headers.get("Authorization"))
        if max_chars and len(content) > max_chars:
            note("too_long", content)
            return self._send(400, {"object": "error", "type": "BadRequestError", "code": 400, "message":
                                    f"This model's maximum context length is {max_chars // 4} tokens. However, you requested "
                                    f"{len(content) // 4 + 16} tokens. Please reduce the length of the messages or completion."})
        note("received", content)
        with lock:
            seen[0] += 1
            if seen[0] == die_after: os._exit(1)          # gone: no answer, every connection reset
        time.sleep(0.02)                                   # keeps a few requests in flight
        text = remixer_answer(content) if mode == "remixer" else f"answer to {content} [seed {body.get('seed')}]"
        self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split())}})
        note("answered", content)
srv = http.server.ThreadingHTTPServer((host, 0), H)
srv.daemon_threads = True
open(port_file + ".tmp", "w").write(str(srv.server_address[1])); os.replace(port_file + ".tmp", port_file)
srv.serve_forever()
'''


class _Server:
    def __init__(self, tmp: Path, name: str, die_after: int = 0, mode: str = "echo", max_chars: int = 0, host: str = "127.0.0.1"):
        self.log_file, port_file = tmp / f"{name}.log", tmp / f"{name}.port"
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port_file), str(self.log_file), str(die_after),
                                      mode, str(max_chars), host])
        t0 = time.time()
        while not port_file.exists():
            assert self.proc.poll() is None and time.time() - t0 < 60, "server did not start"
            time.sleep(0.05)
        self.url = f"http://{host}:{port_file.read_text()}/v1"
        assert httpx.get(f"{self.url}/models", timeout=10).json()["data"][0]["id"] == "toy"

    def events(self, kind: str) -> list[str]:
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return [c for e, c in map(json.loads, lines) if e == kind]

    def stop(self):
        if self.proc.poll() is None: self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def servers(tmp_path):
    a, b = _Server(tmp_path, "a", die_after=15), _Server(tmp_path, "b")
    yield a, b
    a.stop(); b.stop()


def _stage(llm, sp):
    gen = llm.chat([[{"role": "user", "content": f"q{i}"}] for i in range(60)], sp, cache_tag="gen")
    return gen, llm.chat([[{"role": "user", "content": f"judge: {g[0]}"}] for g in gen], sp, cache_tag="judge")


def _expected(model, sp, tag, contents):
    return [f"answer to {c} [seed {request_seed(sp.seed, cache_key(model, [{'role': 'user', 'content': c}], sp, 0, tag))}]"
            for c in contents]


def test_a_server_going_away_mid_stage(servers, tmp_path):
    a, b = servers
    sp = SamplingParams(seed=3, max_tokens=16)
    llm = OpenAILLM("toy", cache=tmp_path / "responses.sqlite", base_urls=[a.url, b.url], max_concurrency=4, timeout=30,
                    backoff=0.05, cooldown=60, show_progress=False)
    gen, judged = _stage(llm, sp)
    assert a.proc.wait(30) == 1                                        # A went away during the first call

    # every prompt got its answer, the right one (answers do not depend on the server)
    want_gen = _expected("toy", sp, "gen", [f"q{i}" for i in range(60)])
    assert [g[0] for g in gen] == want_gen
    assert [j[0] for j in judged] == _expected("toy", sp, "judge", [f"judge: {g}" for g in want_gen])
    assert llm.usage["calls"] == 120 and llm.usage["cache_hits"] == 0

    # the requests A had taken but not answered when it died were retried on B, and answered there
    a_taken, a_answered, b_answered = a.events("received"), a.events("answered"), b.events("answered")
    in_flight = set(a_taken) - set(a_answered)
    assert len(a_taken) == 15 and in_flight and len(a_answered) < 15, (a_taken, a_answered)
    assert in_flight <= set(b_answered)
    assert set(a_answered) | set(b_answered) == {f"q{i}" for i in range(60)} | {f"judge: {g}" for g in want_gen}
    assert llm.usage["retries"] >= len(in_flight)
    # once it had failed, A was left out: not tried first by each of the ~100 requests that came after
    assert llm.sent[a.url] <= 15 + 2 * 4, llm.sent
    assert llm.sent[b.url] >= 120 - len(a_answered)

    # the cache holds every answer, once
    with sqlite3.connect(tmp_path / "responses.sqlite") as db:
        rows = db.execute("SELECT key, tag, text FROM responses").fetchall()
    assert len(rows) == 120 and len({k for k, _, _ in rows}) == 120
    assert sorted(t for _, tag, t in rows if tag == "gen") == sorted(want_gen)
    assert {r["tag"]: r["completions"] for r in ResponseCache(tmp_path / "responses.sqlite").stats()} == {"gen": 60, "judge": 60}

    # nothing lost: the stage rerun against B alone is served entirely from the cache
    rerun = OpenAILLM("toy", cache=tmp_path / "responses.sqlite", base_urls=[b.url], show_progress=False)
    assert _stage(rerun, sp) == (gen, judged)
    assert rerun.usage["calls"] == 0 and rerun.usage["cache_hits"] == 120
