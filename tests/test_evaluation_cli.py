"`reasonembed eval` end to end through the installed command, on a BRIGHT-layout fixture in JSONL."
import json, subprocess, sys
from pathlib import Path

import pytest

from reasonembed.data import write_jsonl
from reasonembed.evaluation import evaluate_run, read_trec_run
from reasonembed.benchmarks import load_bright_task


def _fixture(root: Path) -> Path:
    docs = [{"id": "d0", "content": "Mitochondria produce ATP for the cell."},
            {"id": "d1", "content": "Giraffes have long necks."},
            {"id": "d2", "content": "Mitochondria produce ATP for the cell."},
            {"id": "d3", "content": "Volcanoes erupt molten rock."}]
    write_jsonl(root / "documents" / "earth_science.jsonl", docs)
    write_jsonl(root / "examples" / "earth_science.jsonl", [
        {"id": "e1", "query": "Why do volcanoes erupt rock?", "gold_ids": ["d3", "d3"], "gold_ids_long": [], "excluded_ids": ["N/A"]},
        {"id": "e2", "query": "What makes ATP in a cell?", "gold_ids": ["d2"], "gold_ids_long": [], "excluded_ids": ["d0"]}])
    return root


def _reasonembed(*args, cwd):
    exe = Path(sys.executable).parent / "reasonembed"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "reasonembed.cli"]
    return subprocess.run(cmd + ["eval", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_eval_cli_bm25_jsonl(tmp_path):
    root = _fixture(tmp_path / "bright")
    out = tmp_path / "out"
    r = _reasonembed("--model", "bm25", "--data-dir", str(root), "--set", f"output_dir={out}", "show_progress=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "| **ours: bm25** |" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert list(res["tasks"]) == ["earth_science"]
    iv = res["intervals"]["tasks"]["earth_science"]                   # 95% bootstrap interval of the mean
    assert iv["n"] == 2 and iv["low"] <= res["tasks"]["earth_science"]["mean"]["ndcg_cut_10"] <= iv["high"]
    run = read_trec_run(out / "runs" / "earth_science.trec")
    assert "d0" not in run["e2"] and list(run["e2"])[0] == "d2"        # excluded id dropped; gold first
    _, _, qrels = load_bright_task("earth_science", root)
    assert qrels["e1"] == {"d3": 1}
    assert res["tasks"]["earth_science"]["mean"] == pytest.approx(evaluate_run(run, qrels)["mean"])
    assert (out / "ndcg10.png").stat().st_size > 0


def test_eval_cli_errors(tmp_path):
    r = _reasonembed("--data-dir", str(tmp_path / "missing"), "--tasks", "biology", "--set", f"output_dir={tmp_path / 'o'}", cwd=tmp_path)
    assert r.returncode == 2 and "no such directory" in r.stderr
    r = _reasonembed("--set", "setting=medium", cwd=tmp_path)
    assert r.returncode == 2 and "key 'setting': expected one of ['short', 'long'], got 'medium'" in r.stderr
    r = _reasonembed("--benchmark", "medium", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = _reasonembed("--model", "bm25", "--top-k", "100", "--no-progress", cwd=tmp_path)          # flags of old: refused, named
    assert r.returncode == 2 and "unrecognized arguments: --top-k 100 --no-progress" in r.stderr
    r = _reasonembed("--model", "bm25", "--bright-dir", str(tmp_path), cwd=tmp_path)             # the per-benchmark folder of old
    assert r.returncode == 2 and "unrecognized arguments: --bright-dir" in r.stderr


def test_eval_cli_from_hub_endpoint(tmp_path):
    "The default data source (xlangai/BRIGHT at the pinned revision) through HF_ENDPOINT, then offline from the cache."
    import os
    import pyarrow as pa, pyarrow.parquet as pq
    from reasonembed.hub import LocalHub
    from reasonembed.benchmarks import BRIGHT_HUB_ID, BRIGHT_REVISION
    jsonl = _fixture(tmp_path / "jsonl")
    root = tmp_path / "bright"
    for config in ("documents", "examples"):
        rows = [json.loads(line) for line in (jsonl / config / "earth_science.jsonl").read_text().splitlines()]
        (root / config).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), root / config / "earth_science-00000-of-00001.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env["HF_HOME"] = str(tmp_path / "hf")
    args = ("--model", "bm25", "--tasks", "earth_science", "--set", "show_progress=false")
    with LocalHub({BRIGHT_HUB_ID: root}, commit=BRIGHT_REVISION) as hub:
        exe = Path(sys.executable).parent / "reasonembed"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "reasonembed.cli"]
        r = subprocess.run(cmd + ["eval", *args, f"output_dir={tmp_path / 'o1'}"], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path, env={**env, "HF_ENDPOINT": hub.endpoint})
        assert r.returncode == 0, r.stderr
        fetched = sorted(x.split("/resolve/")[1] for x in hub.requests if x.startswith("GET") and "/resolve/" in x)
        assert fetched == [f"{BRIGHT_REVISION}/{c}/earth_science-00000-of-00001.parquet" for c in ("documents", "examples")]
    r2 = subprocess.run(cmd + ["eval", *args, f"output_dir={tmp_path / 'o2'}"], capture_output=True, text=True,
                        timeout=300, cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"})
    assert r2.returncode == 0, r2.stderr
    res1, res2 = (json.loads((tmp_path / o / "results.json").read_text()) for o in ("o1", "o2"))
    assert res1["revision"] == BRIGHT_REVISION
    assert res1["tasks"]["earth_science"]["mean"] == res2["tasks"]["earth_science"]["mean"]
    assert res1["tasks"]["earth_science"]["mean"]["ndcg_cut_10"] > 0.5


def test_eval_cli_minilm_long_documents_and_missing_gold(tmp_path):
    """A new user's first dense run: MiniLM with the default (BRIGHT: 8192-token) limits on a corpus with a document
    longer than MiniLM's 512 positions, and a gold id that is not in the corpus: the limits are clamped to the model,
    the missing gold is warned about and counted (scored as not retrieved), and the run succeeds."""
    root = _fixture(tmp_path / "bright")
    docs = [json.loads(line) for line in (root / "documents" / "earth_science.jsonl").read_text().splitlines()]
    write_jsonl(root / "documents" / "earth_science.jsonl", docs + [{"id": "d4", "content": "magma rises " * 400}])
    ex = [json.loads(line) for line in (root / "examples" / "earth_science.jsonl").read_text().splitlines()]
    ex[0]["gold_ids"] = ["d3", "gone"]
    write_jsonl(root / "examples" / "earth_science.jsonl", ex)
    out = tmp_path / "out"
    r = _reasonembed("--model", "minilm", "--data-dir", str(root), "--set", f"output_dir={out}", f"cache_dir={tmp_path / 'emb'}",
                     "show_progress=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "exceeds the 512 positions" in r.stderr and "1 gold id(s) are not in the corpus" in r.stderr
    task = json.loads((out / "tasks" / "earth_science.json").read_text())
    assert task["missing_gold"] == 1 and task["key"]["max_len"] == [8192, 8192]
    r = _reasonembed("--model", "bm25", "--data-dir", str(root), "--set", f"output_dir={tmp_path / 'o2'}", "strict_gold=true",
                     cwd=tmp_path)
    assert r.returncode == 2 and "gold id(s) not in the corpus: ['gone']" in r.stderr


def test_eval_cli_compares_several_models(tmp_path):
    "`--model a,b --baseline b`: each model into its folder, then the scores table with its marks and the p-values table."
    root = _fixture(tmp_path / "bright")
    out = tmp_path / "cmp"
    r = _reasonembed("--model", "bm25,minilm", "--baseline", "minilm", "--data-dir", str(root), "--set", f"output_dir={out}",
                     f"cache_dir={tmp_path / 'emb'}", "query_max_len=64", "passage_max_len=64", "show_progress=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| model | Earth | Avg |" in r.stdout and "| vs minilm | Earth | Avg |" in r.stdout, r.stdout
    assert "†: differs from minilm at p < 0.05, paired randomization test" in r.stdout
    cmp = json.loads((out / "comparison.json").read_text())
    assert cmp["baseline"] == "minilm" and list(cmp["vs_baseline"]) == ["bm25"] and cmp["n_resamples"] == 10000
    test = cmp["vs_baseline"]["bm25"]["tasks"]["earth_science"]
    assert test["n"] == 2 and test["exact"] and 0 < test["p"] <= 1
    means = {m: json.loads((out / m / "results.json").read_text())["tasks"]["earth_science"]["mean"]["ndcg_cut_10"] for m in ("bm25", "minilm")}
    assert test["diff"] == pytest.approx(means["bm25"] - means["minilm"], abs=1e-12)
    assert (out / "comparison.md").read_text().strip() in r.stdout
