"""`make gpu-check` (tests/gpu/gpu_check.py) cannot rot between GPU loans: its CPU dry run (the tiny random decoder,
tiny lengths, a few steps, vLLM when it is installed, no cuda cells) runs here in a couple of minutes, every part ends
with a status, and report.json / report.md have the layout the GPU run writes. The pieces only a GPU run reaches are
tested on their own: the batch-size prediction, the bf16 peak table, the utilisation in the report, a part killed at
its time limit, a budget too small for anything, and the pipeline part's run config. Part of the default `make test`
(no marker: with vLLM missing, `make test-fast`, its vLLM part is recorded as skipped)."""
import importlib.util, json, math, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "gpu" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))
import gpu_check as gc  # noqa: E402

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
HAVE_DS = importlib.util.find_spec("deepspeed") is not None


def _run(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    r = _run("--cpu-dry-run", "--out", str(out))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:] + "".join(
        f"\n--- {p.name}\n" + p.read_text(errors="replace")[-2000:] for p in sorted((out / "logs").glob("*.log")))
    return out, json.loads((out / "report.json").read_text())


def test_every_part_ends_with_a_status(dry_run):
    out, rep = dry_run
    assert rep["mode"] == "cpu-dry-run" and list(rep["parts"]) == gc.PARTS
    for name, p in rep["parts"].items():
        assert p["status"] in ("ok", "skipped"), (name, p)
        assert isinstance(p["seconds"], float) and p["box_s"] > 0, (name, p)
    ran = {"env", "model", "encode_hf", "train"} | ({"encode_vllm"} if HAVE_VLLM else set()) | ({"deepspeed"} if HAVE_DS else set())
    assert {k for k, p in rep["parts"].items() if p["status"] == "ok"} == ran
    assert rep["parts"]["cuda_cells"]["reason"].startswith("a CPU dry run")
    assert {"02_models.ipynb", "06_loss.ipynb"} <= set(rep["parts"]["cuda_cells"]["notebooks_found"])
    assert "--synth-dir" in rep["parts"]["pipeline"]["reason"]
    assert 0 < rep["wall_s"] <= rep["budget_s"] and rep["finished"] >= rep["started"]
    assert all((out / p["log"]).exists() for p in rep["parts"].values() if p["status"] == "ok")


def test_report_layout(dry_run):
    out, rep = dry_run
    env = rep["environment"]
    assert env["torch"] and env["transformers"] and env["cuda_available"] is False and env["python"]
    assert rep["peak_bf16"] == {"gpu": None, "tflops": None, "source": "no GPU"}
    enc = rep["summary"]["encode"]
    assert [r["tokens"] for r in enc] == [32, 128]
    assert all(r["hf_docs_per_s"] > 0 and r["hf_tokens_per_s"] > r["hf_docs_per_s"] for r in enc)
    assert all(r["tokens_total"] == r["docs"] * r["tokens"] for r in rep["parts"]["encode_hf"]["lengths"])   # every doc cut at its length
    if HAVE_VLLM:
        assert all(r["vllm_over_hf"] > 0 and r["min_cosine"] >= 0.999 for r in enc)                    # float32 on this CPU
        v = rep["parts"]["encode_vllm"]
        assert v["engine_start_s"] > 0 and v["queries"]["min_cosine"] >= 0.999 and all(c["ok"] for c in v["checks"].values())
    t = rep["parts"]["train"]
    assert t["largest_batch"] == 4 and [r["batch"] for r in t["search"]] == [1, 2, 4] and all(r["fits"] for r in t["search"])
    assert t["shapes"]["group"] == 4 and t["shapes"]["gradient_checkpointing"] is True and t["trainable_params"] > 0
    for name, chunk in (("plain", 0), ("grad_cache", 4)):
        s = rep["summary"]["train"][name]
        assert (s["batch"], s["grad_cache_chunk"], s["steps"]) == (4, chunk, 2) and s["tokens_per_s"] > 0 and s["mfu"] is None
        assert all(math.isfinite(r["loss"]) and r["tokens_with_grad"] == 4 * (16 + 4 * 32) for r in t["runs"][name])
    if HAVE_DS:
        d = rep["parts"]["deepspeed"]
        assert d["exit_codes"] == {"zero1": 0, "resumed": 0, "plain": 0} and all(c["ok"] for c in d["checks"].values())
        assert max(d["resume_max_abs_diff"].values()) <= 1e-6 and len(d["losses"]["resumed"]) == 4
    md = (out / "report.md").read_text()
    for head in ("# GPU check (cpu-dry-run)", "## Machine", "## Parts", "## Encoding", "## Training"):
        assert head in md, head
    assert ("## DeepSpeed ZeRO-1" in md) == HAVE_DS
    assert all(f"| {name} | {p['status']} |" in md for name, p in rep["parts"].items())


def test_utilisation_against_the_gpu_peak(dry_run):
    _, rep = dry_run
    rep = {**rep, "peak_bf16": {"gpu": "NVIDIA H200", "tflops": 989.4, "source": "table entry 'H200 SXM'"}}
    s = gc.summarize(rep)
    plain = s["train"]["plain"]
    assert plain["mfu"] == pytest.approx(plain["model_tflops_per_s"] / 989.4)
    assert s["encode"][0]["hf_mfu"] == pytest.approx(rep["parts"]["encode_hf"]["lengths"][0]["model_tflops_per_s"] / 989.4)
    md = gc.render_markdown({**rep, "summary": s})
    assert "Dense bf16 peak used for the utilisation: 989.4 TFLOP/s (table entry 'H200 SXM')" in md and "%" in md


def test_peak_table():
    assert gc.peak_for("NVIDIA H200") == ("H200 SXM", 989.4)
    assert gc.peak_for("NVIDIA H100 80GB HBM3") == ("H100 SXM", 989.4)
    assert gc.peak_for("NVIDIA H100 PCIe") == ("H100 PCIe", 756.0)
    assert gc.peak_for("NVIDIA H200 NVL")[1] == gc.peak_for("NVIDIA H100 NVL")[1] == 835.0
    assert gc.peak_for("NVIDIA H20") == ("H20", 148.0) and gc.peak_for("NVIDIA GH200 480GB")[0] == "GH200"
    assert gc.peak_for("Tesla T4") == (None, None) and gc.peak_for(None) == (None, None)


def test_largest_batch_prediction():
    G = 2 ** 30
    # 17 GiB fixed + 3 GiB per sample; 92% of 140 GiB = 128.8 GiB -> 37 samples
    B, fixed, per = gc.predict_batch([(1, 20 * G), (2, 23 * G)], 140 * G, 0.92, 96)
    assert (B, round(fixed / G), round(per / G)) == (37, 17, 3)
    assert gc.predict_batch([(1, 20 * G), (2, 23 * G)], 140 * G, 0.92, 16)[0] == 16          # capped
    assert gc.predict_batch([(1, 20 * G), (2, 80 * G)], 100 * G, 0.92, 96)[0] == 2           # never below the probe that fitted


def test_a_part_over_its_time_limit_is_killed_and_recorded(tmp_path):
    for sub in ("parts", "logs", "work"): (tmp_path / sub).mkdir()
    spec = {**gc.make_spec(True), "out": str(tmp_path), "parts_dir": str(tmp_path / "parts"), "logs": str(tmp_path / "logs"),
            "work": str(tmp_path / "work"), "cache": str(tmp_path / "cache")}
    r = gc._launch("env", 0.3, spec, tmp_path)                      # importing torch alone takes longer than 0.3 s
    assert r["status"] == "timeout" and "ran out of its 0 s (killed)" in r["error"] and r["seconds"] < 30


def test_a_budget_too_small_still_writes_the_report(tmp_path):
    r = _run("--cpu-dry-run", "--out", str(tmp_path), "--budget", "1", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["parts"]["env"]["status"] == "timeout" and "budget ran out" in rep["parts"]["env"]["reason"]
    assert all(p["status"] in ("timeout", "skipped") for p in rep["parts"].values())
    assert "| env | timeout |" in (tmp_path / "report.md").read_text()


def test_pipeline_part_config_is_a_valid_run():
    from reasonembed.profiles import parse_run_config
    rc = parse_run_config(gc.pipeline_config("/models/qwen3-random"), source="gpu_check.pipeline_config")
    assert [s.name for s in rc.stages] == ["train_ri", "evaluate", "report"]
    assert rc.stages[0].params["train"]["embedder"]["lora"]["r"] == 32


def test_largest_batch_search_with_simulated_gpu_memory(tmp_path, monkeypatch):
    "The GPU branch of the train part on this CPU: memory of 10 GB + 1 GB per query of a 20 GB device, out of memory above 5."
    import torch
    import reasonembed.training as training
    from reasonembed.testing import make_tiny_decoder
    spec = gc.make_spec(True)
    spec.update(model_dir=str(make_tiny_decoder(tmp_path / "tiny")), part_deadline=__import__("time").time() + 600)
    spec["train"].update(sizes=None, probe=[1, 2], memory_fraction=0.9, tries=3, max_batch=8)
    seen, real = [], training.forward_backward
    def fb(emb, batch, *a, **kw):
        seen.append(len(batch))
        if len(batch) > 5: raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real(emb, batch, *a, **kw)
    monkeypatch.setattr(training, "forward_backward", fb)
    monkeypatch.setattr(gc, "_peak", lambda dev: int(10e9 + 1e9 * seen[-1]))
    monkeypatch.setattr(gc, "_device_total", lambda dev: int(20e9))
    rec = gc.Record(tmp_path / "train.json")
    gc.part_train(spec, rec)
    assert rec["prediction"]["predicted_batch"] == 8                           # (0.9 x 20 - 10) GB / 1 GB, at most max_batch
    assert [(r["batch"], r["fits"]) for r in rec["search"]] == [(1, True), (2, True), (8, False), (6, False), (5, True)]
    assert rec["largest_batch"] == 5 and [r["batch"] for r in rec["runs"]["plain"] + rec["runs"]["grad_cache"]] == [5] * 4
    assert json.loads((tmp_path / "train.json").read_text())["largest_batch"] == 5   # on disk at every step
