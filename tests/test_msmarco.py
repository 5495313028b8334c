"""The MS MARCO start stage ("-ms") of the 4B and Llama route-2 profiles: the profiles' shape, and at tiny scale through
`reasonembed run` with every hub path real (`LocalHub` serving a tiny copy of the dataset's layout under its hub id at
the pinned revision, a tiny random decoder as the backbone, BRIGHT's fixture): MS MARCO rows -> `train_ms` -> the start
model evaluated against an expected block."""
import json, os
from pathlib import Path

import pytest
import yaml

from reasonembed.benchmarks import BRIGHT_HUB_ID, BRIGHT_REVISION
from reasonembed.hub import LocalHub
from reasonembed.msmarco import MSMARCO_DATA, MSMARCO_INSTRUCTION, MSMARCO_REVISION, demo_msmarco
from reasonembed.pipeline import run_pipeline
from reasonembed.profiles import load_run_config
from reasonembed.testing import make_tiny_decoder, write_bright_fixture

ROOT = Path(__file__).resolve().parents[1]
MS_PROFILES = [("reasonembed-qwen3-4b-released-data.yaml", "Qwen/Qwen3-4B", "Qwen3-4B-ms (start)", 19.4),
               ("reasonembed-llama3.1-8b-released-data.yaml", "meta-llama/Llama-3.1-8B", "Llama-3.1-8B-ms (start)", 16.1)]


@pytest.mark.parametrize("name,backbone,label,avg", MS_PROFILES, ids=lambda v: str(v)[:24])
def test_ms_profiles_recreate_the_start_point(name, backbone, label, avg):
    "msmarco and train_ms run first; Basic and RI start from @train_ms/model; the start model is checked against Table 2."
    from reasonembed.cli import main
    from reasonembed.config import from_dict
    from reasonembed.msmarco import MsmarcoConfig
    from reasonembed.reproduce import ExpectedConfig
    from reasonembed.training import TrainConfig
    rc = load_run_config(ROOT / "configs" / name)
    assert [s.name for s in rc.stages] == ["msmarco", "train_ms", "train_basic", "train_ri", "evaluate", "report"]
    st = {s.name: s.params for s in rc.stages}
    ms = from_dict(MsmarcoConfig, st["msmarco"]["msmarco"])
    assert (ms.source, ms.revision, ms.instruction) == (MSMARCO_DATA, MSMARCO_REVISION, MSMARCO_INSTRUCTION)
    t = from_dict(TrainConfig, st["train_ms"]["train"])
    assert st["train_ms"]["data"] == "@msmarco/train.jsonl" and st["train_ms"]["nproc_per_node"] == 8
    assert (t.embedder.model, t.loss.mode, t.embedder.lora.r, t.lr, t.loss.temperature, t.epochs) == (backbone, "basic", 32, 1e-4, 0.02, 1)
    for stage in ("train_basic", "train_ri"):
        assert st[stage]["train"]["embedder"]["model"] == "@train_ms/model"
    ev = st["evaluate"]
    assert ev["models"].split(",")[0] == "@train_ms/model" and ev["labels"].split(",")[0] == label
    exp = from_dict(ExpectedConfig, ev["expected"], where=name)
    assert exp.models[label]["paper_table2"].scores == {"Avg": avg}
    assert main(["run", str(ROOT / "configs" / name), "--check"]) == 0


def test_8b_profile_keeps_the_released_start_point():
    st = {s.name: s.params for s in load_run_config(ROOT / "configs" / "reasonembed-qwen3-8b-released-data.yaml").stages}
    assert "train_ms" not in st and "msmarco" not in st
    assert st["train_basic"]["train"]["embedder"]["model"] == "hanhainebula/qwen3-8b-ft-msmarco"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mshub")
    texts = ["cells divide by mitosis", "arrays are sorted", "what is cells", "a passage about rivers"]
    repos = {BRIGHT_HUB_ID: write_bright_fixture(tmp / "bright"), MSMARCO_DATA: demo_msmarco(tmp / "msmarco", n=8),
             "Qwen/Qwen3-4B": make_tiny_decoder(tmp / "backbone", texts=texts)}
    with LocalHub(repos, commit={BRIGHT_HUB_ID: BRIGHT_REVISION, MSMARCO_DATA: MSMARCO_REVISION}) as h:
        env = {"HF_ENDPOINT": h.endpoint, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "0", "OMP_NUM_THREADS": "1",
               "REASONEMBED_CACHE": str(tmp / "cache")}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try: yield h, tmp
        finally:
            for k, v in old.items():
                if v is None: os.environ.pop(k, None)
                else: os.environ[k] = v


def test_msmarco_then_train_ms_then_the_start_model_checked(hub):
    h, tmp = hub
    train = {"embedder": {"model": "Qwen/Qwen3-4B", "query_max_len": 32, "passage_max_len": 48, "lora": {"r": 4, "alpha": 8}},
             "batching": {"batch_size": 2, "group_size": 2}, "max_steps": 2, "save_every": 1, "lr": 1e-3, "loss": {"mode": "basic"}}
    stages = {
        "msmarco": {"notebook": "20b_msmarco", "params": {"msmarco": {"source": MSMARCO_DATA, "rows": 6}}},
        "train_ms": {"notebook": "21_train", "params": {"data": "@msmarco/train.jsonl", "intensity_samples": 0, "train": train}},
        "evaluate": {"notebook": "22_evaluate", "params": {
            "heldout_dir": "", "benchmarks": {"bright": {"data_dir": "hub", "tasks": "biology"}}, "st_check": False,
            "evaluation": {"batch_size": 8}, "models": "@train_ms/model", "labels": "Qwen3-4B-ms (start)",
            "expected": {"models": {"Qwen3-4B-ms (start)": {"paper_table2": {"source": "Table 2", "scores": {"Avg": 19.4}}}}}}},
        "report": {"notebook": "23_report", "params": {"title": "ms start"}}}
    cfg = tmp / "ms.yaml"
    cfg.write_text(yaml.safe_dump({"name": "ms", "stages": stages}, sort_keys=False))
    run = run_pipeline(cfg, output_root=str(tmp / "outputs"), progress=False)
    ms = json.loads((run / "msmarco" / "msmarco.json").read_text())
    assert (ms["rows"], ms["revision"], ms["files"]) == (6, MSMARCO_REVISION, [f"{MSMARCO_DATA}@{MSMARCO_REVISION}:en/MSMARCO/msmarco_len-0-500.jsonl"])
    rows = [json.loads(l) for l in (run / "msmarco" / "train.jsonl").read_text().splitlines()]
    assert {r["instruction"] for r in rows} == {MSMARCO_INSTRUCTION} and {r["domain"] for r in rows} == {"msmarco"}
    got = [r for r in h.requests if "/resolve/" in r and MSMARCO_DATA in r]
    assert got and all("msmarco_len-0-500.jsonl" in r for r in got), got        # the limit: one file downloaded
    s = json.loads((run / "train_ms" / "train_summary.json").read_text())
    assert (s["mode"], s["steps"], s["model"], s["samples"]) == ("basic", 2, "Qwen/Qwen3-4B", 6)
    assert (run / "train_ms" / "model" / "adapter" / "adapter_config.json").exists()
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert {r["model"] for r in ev["tables"]["BRIGHT"]} >= {"Qwen3-4B-ms (start)"}
    assert "Qwen3-4B-ms (start)" in (run / "evaluate" / "reproduction.md").read_text()


def test_train_stages_start_from_the_ms_model(hub):
    h, tmp = hub
    tiny = {"query_max_len": 32, "passage_max_len": 48, "lora": {"r": 4, "alpha": 8}}
    common = {"batching": {"batch_size": 2, "group_size": 2}, "max_steps": 1, "save_every": 1, "lr": 1e-3, "loss": {"mode": "basic"}}
    stages = {
        "msmarco": {"notebook": "20b_msmarco", "params": {"msmarco": {"source": MSMARCO_DATA, "rows": 4}}},
        "train_ms": {"notebook": "21_train", "params": {"data": "@msmarco/train.jsonl", "intensity_samples": 0,
                                                        "train": {**common, "embedder": {**tiny, "model": "Qwen/Qwen3-4B"}}}},
        "train_basic": {"notebook": "21_train", "params": {"data": "@msmarco/train.jsonl", "intensity_samples": 0,
                                                           "train": {**common, "embedder": {**tiny, "model": "@train_ms/model"}}}},
        "report": {"notebook": "23_report", "params": {"title": "ms chain"}}}
    cfg = tmp / "chain.yaml"
    cfg.write_text(yaml.safe_dump({"name": "chain", "stages": stages}, sort_keys=False))
    run = run_pipeline(cfg, output_root=str(tmp / "outputs"), progress=False)
    s = json.loads((run / "train_basic" / "train_summary.json").read_text())
    assert s["model"] == str(run / "train_ms" / "model") and s["steps"] == 1
