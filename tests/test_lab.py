"""`make lab`: JupyterLab on the chapters (nbs/) with the project's kernel. The target itself is started (through make,
with `LAB_ARGS` for loopback, a free port and a token; as root the target adds --allow-root), then, through the
server's REST API and a kernel's websocket as JupyterLab's page uses them: the lab page is served, a chapter opens
(/api/contents), a python3 kernel starts, runs the chapter's import cell and a cell that reports where it runs (the
.venv's interpreter, this checkout's `reasonembed`). The server is always shut down (POST /api/shutdown, then
SIGTERM / SIGKILL of the process group this test started, each wait bounded)."""
import json, os, signal, socket, subprocess, sys, time, uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTER = "06_loss.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    "Shut the server down: its own shutdown endpoint, then the process group (make and jupyter), each wait bounded."
    if proc.poll() is None:
        try: httpx.post(f"{base}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=5)
        except httpx.HTTPError: pass
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and proc.poll() is None:
            try: os.killpg(proc.pid, sig)
            except ProcessLookupError: break
        try:
            proc.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not (BIN / "jupyter-lab").exists(): pytest.fail(f"jupyterlab is not installed in {BIN.parent} (a main dependency: make install)")
    tmp = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    log = open(tmp / "lab.log", "w")
    # -o .venv/.installed: use the installed environment as it is (never reinstall from inside a test)
    proc = subprocess.Popen(["make", "-s", "-o", f"{BIN.parent}/.installed", f"VENV={BIN.parent}", "lab", f"LAB_ARGS={args}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with {proc.returncode}:\n{(tmp / 'lab.log').read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/api/status", params={"token": token}, timeout=2).status_code == 200: break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 90 s:\n{(tmp / 'lab.log').read_text()[-4000:]}")
            time.sleep(0.5)
        client = httpx.Client(base_url=base, headers={"Authorization": f"token {token}"}, timeout=30)
        yield client, port, token, tmp
        client.close()
    finally:
        _stop(proc, base, token)
        log.close()


def test_lab_serves_the_chapters(lab):
    client, *_ = lab
    page = client.get("/lab")
    assert page.status_code == 200 and "JupyterLab" in page.text
    assert httpx.get(f"{client.base_url}/api/contents/", headers={"Authorization": "token wrong"}).status_code == 403  # the token is required
    listing = client.get("/api/contents/").json()
    names = {c["name"] for c in listing["content"]}
    assert {CHAPTER, "index.ipynb", "00_core.ipynb"} <= names                    # root_dir is nbs/
    nb = client.get(f"/api/contents/{CHAPTER}", params={"content": 1}).json()
    assert nb["type"] == "notebook"
    cells = nb["content"]["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# Loss")
    assert any("$$L_i" in c["source"] for c in cells)                            # the math JupyterLab renders
    specs = client.get("/api/kernelspecs").json()
    assert specs["default"] == "python3" and "python3" in specs["kernelspecs"]


def _execute(ws, code: str, timeout: float = 120) -> dict:
    "Run `code` on the kernel's shell channel; returns {'status', 'stdout', 'result', 'error'} once the kernel is idle again."
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                                   "version": "5.3", "date": ""},
                        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                                    "allow_stdin": False, "stop_on_error": True}}))
    out, deadline, ws_timeout = {"status": None, "stdout": "", "result": None, "error": None, "idle": False}, time.monotonic() + timeout, ws.gettimeout()
    try:
        while not (out["status"] and out["idle"]):
            left = deadline - time.monotonic()
            if left <= 0: raise TimeoutError(f"no reply to {code!r} within {timeout} s: {out}")
            ws.settimeout(left)
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id: continue
            t, c = m["msg_type"], m["content"]
            if t == "stream" and c["name"] == "stdout": out["stdout"] += c["text"]
            elif t == "execute_result": out["result"] = c["data"].get("text/plain")
            elif t == "error": out["error"] = f"{c['ename']}: {c['evalue']}"
            elif t == "execute_reply": out["status"] = c["status"]
            elif t == "status" and c["execution_state"] == "idle": out["idle"] = True
    finally:
        ws.settimeout(ws_timeout)
    return out


def test_a_chapter_cell_runs_in_the_project_kernel(lab):
    import websocket  # websocket-client: a dependency of jupyter_server
    client, port, token, _ = lab
    cells = client.get(f"/api/contents/{CHAPTER}", params={"content": 1}).json()["content"]["cells"]
    imports = next(c["source"] for c in cells if c["cell_type"] == "code" and c["source"].startswith("#| export"))
    kernel = client.post("/api/kernels", json={"name": "python3"}).json()
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}", timeout=30)
        try:
            r = _execute(ws, imports)
            assert r["status"] == "ok", r
            r = _execute(ws, "import sys, reasonembed\n"
                             "print(sys.executable)\n"
                             "q = torch.tensor([[1., 0.], [0.6, 0.8]]); p = torch.tensor([[0.8, 0.6], [0., 1.], [0.6, 0.8], [1., 0.]])\n"
                             "round(F.cross_entropy(q @ p.T / 0.5, torch.tensor([0, 2])).item(), 4), reasonembed.__file__")
            assert r["status"] == "ok", r
            assert Path(r["stdout"].strip()).parent == BIN                                    # the .venv's interpreter
            loss, path = eval(r["result"])
            assert Path(path).resolve().is_relative_to(ROOT.resolve())                         # this checkout's package
            assert loss == pytest.approx(1.1630, abs=1e-4), r                                  # the 06_loss hand example, mean over 2 queries
            r = _execute(ws, "1/0")
            assert r["status"] == "error" and "ZeroDivisionError" in r["error"]
        finally:
            ws.close()
    finally:
        client.delete(f"/api/kernels/{kernel['id']}")


def test_the_target_adds_allow_root_only_as_root():
    out = subprocess.run(["make", "-n", "-o", f"{BIN.parent}/.installed", f"VENV={BIN.parent}", "lab", "LAB_ARGS=--no-browser"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.replace("\\\n", " ")
    assert f"{BIN}/jupyter lab --ServerApp.root_dir=nbs" in cmd and "--no-browser" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)
