"""The README's reproduction routes, end to end through `reasonembed run` at tiny scale, every hub path real
(`huggingface_hub` against `LocalHub` serving local folders under the authors' hub ids):

- route 1: evaluate a released model (a tiny random decoder served as `hanhainebula/reason-embed-qwen3-8b-0928`) and BM25
  on BRIGHT and R2MED from the hub, and set our numbers beside the paper's;
- route 2: train Basic and RI from the released start checkpoint on the released data layout
  (`hanhainebula/reason-embed-data`), then evaluate and report.
"""
import json, os
from pathlib import Path

import pytest
import yaml

from reasonembed.batching import RELEASED_DATA, RELEASED_FOLDER
from reasonembed.benchmarks import BRIGHT_HUB_ID, BRIGHT_REVISION, R2MED_REVISIONS
from reasonembed.hub import LocalHub
from reasonembed.pipeline import run_pipeline
from reasonembed.testing import make_tiny_decoder, write_bright_fixture, write_r2med_fixture

RELEASED_MODEL, START = "hanhainebula/reason-embed-qwen3-8b-0928", "hanhainebula/qwen3-8b-ft-msmarco"


def _released_data(root: Path) -> Path:
    "Two domain files of the released layout: rows {prompt, query, reasoning_query, pos, neg, train_group_size, batch_size}."
    folder = root / RELEASED_FOLDER; folder.mkdir(parents=True)
    for domain, inst, topic in [("biology", "Given a Biology post, retrieve relevant passages that help answer the post.", "cells"),
                                ("leetcode", "Given a Coding problem, retrieve relevant examples that help answer the problem.", "arrays")]:
        rows = [{"prompt": inst, "query": f"question {i} about {topic} and how they work",
                 "reasoning_query": f"question {i} about {topic}. Reasoning: the answer needs {topic} facts.",
                 "pos": [f"a passage explaining {topic} number {i}"], "neg": [f"an unrelated text {j} on weather" for j in range(3)],
                 "train_group_size": 16 if domain == "biology" else 2, "batch_size": 8 if domain == "biology" else 64,
                 "pos_scores": [4], "neg_scores": [1, 2, 1]} for i in range(6)]
        rows[2]["neg"] = []                                    # a row without negatives: dropped and counted, not fatal
        (folder / f"{domain}-formatted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    "A hub endpoint with BRIGHT, one R2MED task, the released data, the start checkpoint and a released model."
    tmp = tmp_path_factory.mktemp("hub")
    texts = ["cells divide by mitosis", "arrays are sorted", "question about cells", "weather is sunny"]
    repos = {BRIGHT_HUB_ID: write_bright_fixture(tmp / "bright"), "R2MED/Biology": write_r2med_fixture(tmp / "r2med") / "Biology",
             RELEASED_DATA: _released_data(tmp / "data"), START: make_tiny_decoder(tmp / "start", texts=texts),
             RELEASED_MODEL: make_tiny_decoder(tmp / "released", seed=1, texts=texts)}
    commits = {BRIGHT_HUB_ID: BRIGHT_REVISION, "R2MED/Biology": R2MED_REVISIONS["Biology"]}
    with LocalHub(repos, commit=commits) as h:
        env = {"HF_ENDPOINT": h.endpoint, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "0", "OMP_NUM_THREADS": "1",
               "REASONEMBED_CACHE": str(tmp / "cache")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try: yield h, tmp
        finally:
            for k, v in old.items():
                if v is None: os.environ.pop(k, None)
                else: os.environ[k] = v


def _run(tmp: Path, name: str, stages: dict) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"name": name, "stages": stages}, sort_keys=False))
    return run_pipeline(cfg, output_root=str(tmp / "outputs"), progress=False)


EVAL = {"heldout_dir": "", "benchmarks": {"bright": {"data_dir": "hub", "tasks": "biology,leetcode"}, "r2med": {"data_dir": "hub", "tasks": "Biology"}},
        "evaluation": {"batch_size": 8}, "st_check": False}


def test_route1_released_models(hub):
    h, tmp = hub
    run = _run(tmp, "route1", {
        "evaluate": {"notebook": "22_evaluate", "params": {**EVAL, "models": RELEASED_MODEL, "labels": "ReasonEmbed Qwen3-8B", "bm25": True}},
        "report": {"notebook": "23_report", "params": {"title": "route 1"}}})
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert {r["model"] for r in ev["tables"]["BRIGHT"]} == {"ReasonEmbed Qwen3-8B", "BM25"}
    md = (run / "evaluate" / "evaluation.md").read_text()
    assert "### BRIGHT beside the paper" in md and "### R2MED beside the paper" in md
    bright_row = next(l for l in md.split("### BRIGHT beside the paper")[1].splitlines() if l.startswith("| ReasonEmbed Qwen3-8B"))
    assert "/ 55.5 (" in bright_row and "/ 33.6 (" in bright_row          # Bio and Leet beside the paper's 55.5 and 33.6
    assert bright_row.startswith("| ReasonEmbed Qwen3-8B | – |")          # 2 of 12 tasks: no average set beside the paper's
    assert "| BM25 | – | – |" in md.split("### R2MED beside the paper")[1]  # the paper gives R2MED averages only (15.13 for BM25)
    fetched = [r for r in h.requests if "/resolve/" in r and RELEASED_MODEL in r]
    assert fetched, "the released model came through the hub"
    assert "beside the paper" in (run / "report.md").read_text()


def test_route2_released_data_from_the_start_checkpoint(hub):
    h, tmp = hub
    train = {"embedder": {"model": START, "query_max_len": 32, "passage_max_len": 48, "lora": {"r": 4, "alpha": 8}},
             "batching": {"batch_size": 2, "group_size": 2}, "max_steps": 2, "save_every": 1, "lr": 1e-3,
             "domains": ["biology", "leetcode"]}                     # the two domain files of this hub's copy
    run = _run(tmp, "route2", {
        "train_basic": {"notebook": "21_train", "params": {"data": RELEASED_DATA, "intensity_samples": 0,
                                                           "train": {**train, "loss": {"mode": "basic"}}}},
        "train_ri": {"notebook": "21_train", "params": {"data": RELEASED_DATA, "intensity_samples": 4,
                                                        "train": {**train, "loss": {"mode": "ri", "ri_start_step": 1}}}},
        "evaluate": {"notebook": "22_evaluate", "params": {**EVAL, "models": f"{START},@train_basic/model,@train_ri/model",
                                                           "labels": "start,ReasonEmbed-Basic Qwen3-8B,ReasonEmbed Qwen3-8B"}},
        "report": {"notebook": "23_report", "params": {"title": "route 2"}}})
    for stage, mode in [("train_basic", "basic"), ("train_ri", "ri")]:
        s = json.loads((run / stage / "train_summary.json").read_text())
        assert (s["mode"], s["steps"], s["model"]) == (mode, 2, START)
        assert (run / stage / "model" / "adapter" / "adapter_config.json").exists()
        assert "12 samples from ['hanhainebula/reason-embed-data']" in (run / stage / f"{stage}.ipynb").read_text()
    got = sorted(r.split("/")[-1] for r in h.requests if "/resolve/" in r and RELEASED_FOLDER in r)
    assert set(got) == {f"{d}-formatted.jsonl" for d in ("biology", "leetcode")} | set()   # only the two files the hub has
    md = (run / "evaluate" / "evaluation.md").read_text()
    assert "| ReasonEmbed Qwen3-8B |" in md.split("### BRIGHT beside the paper")[1]
    assert (run / "report.md").exists()


def test_route1_profile_names_the_released_models_and_the_authors_settings():
    from reasonembed.benchmarks import REFERENCE_BRIGHT, REFERENCE_R2MED
    from reasonembed.config import from_dict
    from reasonembed.evaluation import EvalConfig, max_lengths
    from reasonembed.profiles import load_run_config
    root = Path(__file__).resolve().parents[1]
    ev = {s.name: s.params for s in load_run_config(root / "configs" / "released-models.yaml").stages}["evaluate"]
    models, labels = ev["models"].split(","), ev["labels"].split(",")
    assert len(models) == len(labels) == 6 and all(m.startswith("hanhainebula/reason-embed-") for m in models)
    assert all(l in REFERENCE_BRIGHT and l in REFERENCE_R2MED for l in labels)       # each set beside the paper's row
    assert (ev["benchmarks"], ev["bm25"], ev["evaluation"]["top_k"]) == ({"bright": "hub", "r2med": "hub"}, True, 2000)
    cfgs = [from_dict(EvalConfig, {**ev["evaluation"], "benchmark": b}) for b in ("bright", "r2med")]
    assert [max_lengths(c) for c in cfgs] == [(8192, 8192), (512, 512)]
    assert ev["evaluation"]["embedder"] == {"dtype": "float16", "pooling": "last", "backend": "vllm"}   # FlagEmbedding: use_fp16
