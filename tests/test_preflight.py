"""The preflight of a run profile, offline: `configs/released-models.yaml` against `LocalHub` serving tiny tokenizer and
config folders under the authors' hub ids (the six released models, BRIGHT and the eight R2MED tasks at their pinned
revisions). Only config and tokenizer files are fetched, never weights. The Llama-3 models' tokenizer row fails on a
fixture that transformers rebuilds at load when the load-time fix is off, and passes with it."""
import json, os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from reasonembed.benchmarks import BRIGHT_HUB_ID, BRIGHT_REVISION, R2MED_REVISIONS
from reasonembed.hub import LocalHub
from reasonembed.backbones import PROBE_TEXT, saved_ids
from reasonembed.preflight import llama3_style_tokenizer, preflight, preflight_cli, preflight_table
from reasonembed.testing import make_tiny_decoder

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ["hanhainebula/reason-embed-qwen3-8b-0928", "hanhainebula/reason-embed-basic-qwen3-8b-0928",
            "hanhainebula/reason-embed-qwen3-4b-0928", "hanhainebula/reason-embed-basic-qwen3-4b-0928",
            "hanhainebula/reason-embed-llama-3.1-8b-0928", "hanhainebula/reason-embed-basic-llama-3.1-8b-0928"]
LLAMA = [m for m in RELEASED if "llama" in m]
FLAGS = {"add_bos_token": True, "add_eos_token": True}          # as the authors' training saves them with the model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    "Tokenizer/config folders: Qwen3-Embedding-style, Qwen3-style, Llama-3-style (flags saved), and the rebuilt Llama-3."
    tmp = tmp_path_factory.mktemp("pf")
    tiny = make_tiny_decoder(tmp / "tiny")
    for f in tiny.glob("*.safetensors"): f.unlink()              # config and tokenizer only: a weight request would 404
    return {"qwen3": tiny,
            "qwen3-embedding": llama3_style_tokenizer(tiny, tmp / "qwen3-embedding", post="eot", tokenizer_class="Qwen2Tokenizer"),
            "llama3": llama3_style_tokenizer(tiny, tmp / "llama3", FLAGS),
            "llama3-rebuilt": llama3_style_tokenizer(tiny, tmp / "llama3-rebuilt", tokenizer_class="LlamaTokenizerFast"),
            "tmp": tmp}


def _hub(folders, llama: str):
    repos = {m: folders["llama3" if "llama" in m else ("qwen3" if "basic" in m else "qwen3-embedding")] for m in RELEASED}
    repos.update({m: folders[llama] for m in LLAMA})
    repos[BRIGHT_HUB_ID] = folders["qwen3"]                         # a dataset repo: only its revision is asked for
    repos.update({f"R2MED/{t}": folders["qwen3"] for t in R2MED_REVISIONS})
    commits = {BRIGHT_HUB_ID: BRIGHT_REVISION, **{f"R2MED/{t}": c for t, c in R2MED_REVISIONS.items()}}
    return LocalHub(repos, commit=commits)


def _preflight(folders, llama: str, name: str, **kw):
    tmp = folders["tmp"]
    with _hub(folders, llama) as h:
        env = {"HF_ENDPOINT": h.endpoint, "HF_HOME": str(tmp / f"hf-{name}"), "HF_HUB_OFFLINE": "0", "REASONEMBED_CACHE": str(tmp / "cache")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try: rows = preflight(ROOT / "configs" / "released-models.yaml", **kw)
        finally:
            for k, v in old.items():
                if v is None: os.environ.pop(k, None)
                else: os.environ[k] = v
        return rows, list(h.requests)


def test_released_models_preflight_offline(folders, capsys):
    rows, requests = _preflight(folders, "llama3", "ok")
    print(preflight_table(rows))
    status = {(r.check, r.subject): r.status for r in rows}
    for m in RELEASED:
        assert status[("model", m)] == "OK" and status[("tokenizer", m)] == "OK", preflight_table(rows)
    tok = {r.subject: r.detail for r in rows if r.check == "tokenizer"}
    assert "first '<|begin_of_text|>'" in tok[LLAMA[0]] and "restored" not in tok[LLAMA[0]]       # BOS kept, nothing appended
    assert "pooled '<|endoftext|>'" in tok[RELEASED[0]]                                           # Qwen3-Embedding-style end token
    datasets = [r for r in rows if r.check == "dataset"]
    assert len(datasets) == 9 and all(r.status == "OK" for r in datasets)                         # BRIGHT + 8 R2MED revisions
    assert [r.status for r in rows if r.check == "disk"] == ["OK"]
    assert {r.status for r in rows if r.check == "gpu memory"} <= {"OK", "WARN"}
    assert not any(r.endswith((".safetensors", ".bin")) for r in requests), "weights were requested"
    assert any("/api/models/hanhainebula/reason-embed-llama-3.1-8b-0928/revision/main" in r for r in requests)
    assert not any(r.status == "FAIL" for r in rows)


def test_rebuilt_llama_fails_without_the_load_time_fix(folders):
    before, _ = _preflight(folders, "llama3-rebuilt", "before", fix_tokenizers=False)
    after, _ = _preflight(folders, "llama3-rebuilt", "after")
    tok_before = {r.subject: r for r in before if r.check == "tokenizer"}
    tok_after = {r.subject: r for r in after if r.check == "tokenizer"}
    for m in LLAMA:
        assert tok_before[m].status == "FAIL" and "gives other ids than its tokenizer.json" in tok_before[m].detail, tok_before[m]
        assert tok_after[m].status == "OK" and "restored at load" in tok_after[m].detail, tok_after[m]
    for m in set(RELEASED) - set(LLAMA):
        assert tok_before[m].status == tok_after[m].status == "OK"


def test_flags_passed_rebuild_and_the_loader_restores(folders):
    "transformers 5 rebuilds the post-processor when the flags reach the class (FlagEmbedding passes add_eos_token=True)."
    from reasonembed.backbones import ids_difference, load_tokenizer
    d = folders["llama3"]
    raw = load_tokenizer(d, fix=False, add_eos_token=True)
    want = saved_ids(d)
    assert ids_difference(raw, raw(PROBE_TEXT)["input_ids"], want) == "'<|begin_of_text|>' dropped at the start, '<|end_of_text|>' appended"
    assert load_tokenizer(d, add_eos_token=True)(PROBE_TEXT)["input_ids"] == want


def _models_server(model: str, max_model_len: int):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": model, "max_model_len": max_model_len}]}).encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"


@pytest.mark.parametrize("ctx,code", [(16384, 1), (40960, 0)])
def test_annotator_context_and_exit_status(tmp_path, ctx, code, capsys):
    "The annotator served at 16384 tokens cannot hold a 49,152-character document: a blocker; at 40,960 (the authors') it can."
    srv, url = _models_server("annotator", ctx)
    prof = tmp_path / "synth.yaml"
    prof.write_text(yaml.safe_dump({"name": "s", "stages": {"synthesize": {"notebook": "20_synthesize", "params": {
        "domains": "biology", "remixer": {"generator": {"backend": "transformers", "model": "smollm2"},
                                          "annotator": {"backend": "openai", "model": "annotator", "options": {"base_urls": [url]}},
                                          "miner": {"model": "minilm"}}}}}}))
    try: assert preflight_cli(str(prof)) == code
    finally: srv.shutdown()
    out = capsys.readouterr().out
    assert ("FAIL | context 16384 tokens" in out) == (ctx == 16384), out


def test_offline_uses_the_cache_and_says_what_it_could_not_check(folders, monkeypatch):
    "With HF_HUB_OFFLINE the models come from the cache filled by a first preflight; dataset revisions are a warning, not a pass."
    _preflight(folders, "llama3", "offline")                     # fills the cache
    tmp = folders["tmp"]
    for k, v in {"HF_HOME": str(tmp / "hf-offline"), "HF_HUB_OFFLINE": "1", "REASONEMBED_CACHE": str(tmp / "cache")}.items():
        monkeypatch.setenv(k, v)
    rows = preflight(ROOT / "configs" / "released-models.yaml")
    assert {r.status for r in rows if r.check == "tokenizer"} == {"OK"}, preflight_table(rows)
    assert {r.status for r in rows if r.check == "dataset"} == {"WARN"}


def test_route2_profile_counts_the_trained_models(folders, monkeypatch):
    "A route-2 profile: the trained models (`@train_basic/model`) take their base model's config for the disk and GPU rows."
    from reasonembed.preflight import profile_models
    tmp = folders["tmp"]
    with LocalHub({"hanhainebula/qwen3-8b-ft-msmarco": folders["qwen3"], "hanhainebula/reason-embed-data": folders["qwen3"],
                   BRIGHT_HUB_ID: folders["qwen3"], **{f"R2MED/{t}": folders["qwen3"] for t in R2MED_REVISIONS}},
                  commit={BRIGHT_HUB_ID: BRIGHT_REVISION, **{f"R2MED/{t}": c for t, c in R2MED_REVISIONS.items()}}) as h:
        for k, v in {"HF_ENDPOINT": h.endpoint, "HF_HOME": str(tmp / "hf-r2"), "HF_HUB_OFFLINE": "0", "REASONEMBED_CACHE": str(tmp / "cache")}.items():
            monkeypatch.setenv(k, v)
        cfg = ROOT / "configs" / "reasonembed-qwen3-8b-released-data.yaml"
        rows = preflight(cfg)
    uses = profile_models(cfg)[0]
    assert any(u.embedder.model == "@train_basic/model" for u in uses)
    gpu = [r.subject for r in rows if r.check == "gpu memory"]
    assert "evaluate: @train_basic/model" in gpu and "train_basic: hanhainebula/qwen3-8b-ft-msmarco" in gpu, preflight_table(rows)
    assert {r.status for r in rows if r.check == "tokenizer"} == {"OK"}, preflight_table(rows)
    data = next(r for r in rows if r.check == "dataset" and r.subject == "hanhainebula/reason-embed-data")
    assert data.status == "WARN" and "not pinned" in data.detail, data
    assert not any(r.status == "FAIL" for r in rows), preflight_table(rows)


def test_run_preflight_flag_is_the_preflight(tmp_path, capsys):
    "`reasonembed run CONFIG --preflight` prints the same table and exits 1 on a blocker, before any stage runs."
    from reasonembed.cli import main
    srv, url = _models_server("annotator", 16384)
    prof = tmp_path / "synth.yaml"
    prof.write_text(yaml.safe_dump({"name": "s", "output_root": str(tmp_path / "out"), "stages": {"synthesize": {
        "notebook": "20_synthesize", "params": {"domains": "biology", "remixer": {
            "generator": {"backend": "transformers", "model": "smollm2"},
            "annotator": {"backend": "openai", "model": "annotator", "options": {"base_urls": [url]}},
            "miner": {"model": "minilm"}}}}}}))
    try: assert main(["run", str(prof), "--preflight"]) == 1
    finally: srv.shutdown()
    assert "FAIL | context 16384 tokens" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()     # nothing ran
