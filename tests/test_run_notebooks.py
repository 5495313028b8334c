"""The run notebooks (nbs/2x_*.ipynb) and the run configs: parameters, profiles, and a reduced demo through papermill.

nbdev-test skips the run notebooks (`skip_exec` front matter): they are exercised here, chained the way
`reasonembed run` chains them, on a few samples and a couple of steps.
"""
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from reasonembed.pipeline import run_pipeline, resume_run, stage_ref
from reasonembed.profiles import load_run_config, notebook_parameters

ROOT = Path(__file__).resolve().parent.parent
RUN_NOTEBOOKS = sorted((ROOT / "nbs").glob("2[0-9]*_*.ipynb"))
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_run_notebooks_exist():
    assert [p.stem for p in RUN_NOTEBOOKS] == ["20_synthesize", "20a_prepare", "20b_msmarco", "21_train", "22_evaluate", "23_report"]


@pytest.mark.parametrize("nb", RUN_NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_flat_and_papermill_reads_all_of_it(nb):
    from papermill.translators import papermill_translators
    ours = notebook_parameters(nb)
    assert {"run_dir", "stage_dir"} <= set(ours)
    for k, v in ours.items():
        assert isinstance(v, (str, int, float, bool, dict, list, type(None))), f"{nb.name}: {k} = {v!r} is not a flat value"
    cell = next(c for c in nbformat.read(str(nb), 4).cells if "parameters" in c.metadata.get("tags", []))
    seen = [p.name for p in papermill_translators.find_translator("python3", "python").inspect(cell)]
    assert seen == list(ours), f"{nb.name}: papermill reads {seen}, the notebook declares {list(ours)}"


@pytest.mark.parametrize("nb", RUN_NOTEBOOKS, ids=lambda p: p.stem)
def test_run_notebooks_export_nothing_and_skip_nbdev_test(nb):
    cells = nbformat.read(str(nb), 4).cells
    assert not any(c.cell_type == "code" and c.source.lstrip().startswith(("#| export", "#|export")) for c in cells)
    assert cells[0].cell_type == "raw" and "skip_exec: true" in cells[0].source


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda p: p.stem)
def test_profiles_match_the_notebooks(cfg):
    from reasonembed.profiles import check_run_config
    rc = load_run_config(cfg)          # every parameter and every config block checked against the notebooks
    assert rc.stages[-1].notebook.stem == "23_report"
    check_run_config(rc)               # and what the run will need: @stage references, ranges, labels, model names


PAPER = [("qwen3-8b", "hanhainebula/qwen3-8b-ft-msmarco"), ("qwen3-4b", "Qwen/Qwen3-4B"), ("llama3.1-8b", "meta-llama/Llama-3.1-8B")]


@pytest.mark.parametrize("route", ["", "-released-data"])
@pytest.mark.parametrize("backbone,start", PAPER)
def test_paper_profiles_follow_the_recipe(backbone, start, route):
    from reasonembed.config import from_dict
    from reasonembed.evaluation import EvalConfig, max_lengths
    from reasonembed.training import TrainConfig
    st = {s.name: s.params for s in load_run_config(ROOT / "configs" / f"reasonembed-{backbone}{route}.yaml").stages}
    if route and backbone != "qwen3-8b": start = "@train_ms/model"     # route 2 recreates the unreleased "-ms" start point
    for stage, mode in [("train_basic", "basic"), ("train_ri", "ri")]:
        t = from_dict(TrainConfig, st[stage]["train"])
        assert t.loss.mode == mode and st[stage]["nproc_per_node"] == 8
        assert (t.embedder.model, t.embedder.lora.r, t.embedder.lora.alpha, t.embedder.lora.dropout) == (start, 32, 64.0, 0.1)
        assert (t.lr, t.loss.temperature, t.loss.ri_start_step, t.loss.kappa, t.embedder.dtype) == (1e-4, 0.02, 100, 5.0, "bfloat16")
        assert (t.embedder.query_max_len, t.embedder.passage_max_len, t.embedder.gradient_checkpointing) == (512, 512, True)
        assert t.deepspeed == "configs/zero1.json" and t.batching.batch_size is None    # per-domain sizes from the registry
        assert (t.warmup, t.warmup_ratio, t.epochs) == ("log", 0.1, 1)                # DeepSpeed WarmupDecayLR (ds_stage1.json)
    if route:
        assert st["train_ri"]["data"] == "hanhainebula/reason-embed-data" and "synthesize" not in st
    else:
        r = st["synthesize"]["remixer"]
        assert len(st["synthesize"]["domains"].split(",")) == 12 and r["annotator"]["model"] == "hanhainebula/reason-embed-annotator-qwen3-8b-0928"
        assert (r["miner"]["query_max_len"], r["miner"]["trust_remote_code"]) == (8192, True)
        assert (r["miner"]["backend"], r["miner"]["vllm_options"]) == ("vllm", {"hf_overrides": {"is_causal": False}})
        assert r["miner"]["dtype"] == "float16" and "annotation_doc_chars" not in r         # fp16 mining; whole documents
    ev = st["evaluate"]
    assert ev["benchmarks"] == {"bright": "hub", "r2med": "hub"} and ev["evaluation"]["embedder"]["backend"] == "vllm"
    assert ev["evaluation"]["embedder"]["dtype"] == "float16" and ev["models"].split(",")[0] == start
    assert [max_lengths(from_dict(EvalConfig, {**ev["evaluation"], "benchmark": b})) for b in ("bright", "r2med")] == [(8192, 8192), (512, 512)]


def test_paper_profiles_inherit_the_recipe(capsys):
    "Each model profile holds only what differs: its start model (said once), the evaluated models, the title."
    from reasonembed.cli import main
    from reasonembed.profiles import read_run_config
    for backbone, start in PAPER:
        text = "\n".join(l for l in (ROOT / "configs" / f"reasonembed-{backbone}.yaml").read_text().splitlines() if not l.startswith("#"))
        assert "base: paper-recipe.yaml" in text and text.count("temperature") == 0 and text.count(start) == 2
        d = read_run_config(ROOT / "configs" / f"reasonembed-{backbone}-released-data.yaml")
        assert d["_bases"][0].endswith(f"reasonembed-{backbone}.yaml") and d["_bases"][1].endswith("paper-recipe.yaml")
    recipe = (ROOT / "configs" / "paper-recipe.yaml").read_text()
    for constant in ("temperature: 0.02", "kappa: 5.0", "ri_start_step: 100", "lr: 1.0e-4", "warmup_ratio: 0.1"):
        assert recipe.count(constant) == 1, constant                                   # the method's constants: once
    assert main(["run", str(ROOT / "configs" / "reasonembed-qwen3-8b.yaml"), "--show", "--set", "train_ri.train.lr=5.0e-5"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["stages"]["train_ri"]["params"]["train"]["lr"] == 5e-5 and shown["stages"]["train_basic"]["params"]["train"]["lr"] == 1e-4
    assert shown["stages"]["train_ri"]["params"]["train"]["loss"]["mode"] == "ri" and "base" not in shown
    assert main(["run", str(ROOT / "configs" / "reasonembed-qwen3-8b.yaml"), "--check", "--set", "train_ri.train.lrr=1"]) == 2


TINY_TRAIN = {"embedder": {"query_max_len": 64, "passage_max_len": 96}, "batching": {"batch_size": 2, "group_size": 2},
              "save_every": 1}
REDUCED = {
    "name": "reduced-demo",
    "stages": {
        "synthesize": {"notebook": "20_synthesize", "params": {"remixer": {
            "n_sources": 8, "generation_sampling": {"max_tokens": 32}, "reasoner": {"sampling": {"max_tokens": 16}}, "keep_k": 4},
            "heldout_fraction": 0.25}},
        "train_basic": {"notebook": "21_train", "params": {"train": {**TINY_TRAIN, "loss": {"mode": "basic"}, "max_steps": 1}}},
        "train_ri": {"notebook": "21_train", "params": {"train": {**TINY_TRAIN, "loss": {"mode": "ri", "ri_start_step": 1},
                                                                  "max_steps": 2}, "intensity_samples": 4}},
        "evaluate": {"notebook": "22_evaluate", "params": {"evaluation": {"query_max_len": 64, "passage_max_len": 128}}},
        "report": {"notebook": "23_report", "params": {"title": "reduced demo"}},
    },
}


def test_reduced_demo_through_papermill(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    cfg = tmp_path / "reduced.yaml"
    cfg.write_text(yaml.safe_dump(REDUCED, sort_keys=False))
    run = run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    for stage in REDUCED["stages"]:
        assert (run / stage / "DONE").exists() and (run / stage / f"{stage}.ipynb").exists(), stage
    syn = json.loads((run / "synthesize" / "synthesis.json").read_text())
    assert syn["train_rows"] >= 2 and sum(syn["heldout_rows"].values()) >= 1
    assert (run / "synthesize" / "heldout" / "examples").is_dir()
    for stage, mode in [("train_basic", "basic"), ("train_ri", "ri")]:
        s = json.loads((run / stage / "train_summary.json").read_text())
        assert s["mode"] == mode and s["steps"] == REDUCED["stages"][stage]["params"]["train"]["max_steps"]
        assert (run / stage / "model" / "modules.json").exists() and (run / stage / "training_curves.png").exists()
        assert yaml.safe_load((run / stage / "train_config.yaml").read_text())["loss"]["mode"] == mode
    assert (run / "train_ri" / "intensity.png").exists()
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert [r["model"] for r in ev["tables"]["held-out"]] == ["base", "Basic", "RI"]
    assert all(0 <= r["Avg"] <= 100 for r in ev["tables"]["held-out"])
    assert min(ev["st_check_min_cosine"].values()) > 0.999
    report = (run / "report.md").read_text()
    for part in ("## Configuration", "## Synthesis", "## Training", "## Retrieval", "training_curves.png", "ndcg10.png",
                 "median RI", "intensity.png"):
        assert part in report, part
    for img in [l.split("](")[1].rstrip(")") for l in report.splitlines() if l.startswith("![")]:
        assert (run / img).exists(), img

    # a resumed run skips every finished stage
    before = {s: (run / s / "DONE").stat().st_mtime_ns for s in REDUCED["stages"]}
    (run / "report" / "DONE").unlink()
    resume_run(run, progress=False)
    assert all((run / s / "DONE").stat().st_mtime_ns == before[s] for s in REDUCED["stages"] if s != "report")
    assert (run / "report" / "DONE").exists()


def reduced_demo(tmp_path) -> dict:
    "configs/demo.yaml (the whole method on theoremqa-mini), reduced: 24 training and 12 held-out questions, short texts, 1-2 steps."
    from reasonembed.config import deep_merge
    from reasonembed.hub import resolve_dataset
    from reasonembed.profiles import read_run_config
    ids = sorted(json.loads(l)["id"] for l in (Path(resolve_dataset("theoremqa-mini")) / "examples" / "theoremqa_mini.jsonl").open())
    (tmp_path / "train_ids.txt").write_text("\n".join(ids[:24])); (tmp_path / "heldout_ids.txt").write_text("\n".join(ids[24:36]))
    tiny = {"embedder": {"query_max_len": 64, "passage_max_len": 64}, "batching": {"batch_size": 4}, "epochs": 1, "save_every": 0}
    return deep_merge(read_run_config(ROOT / "configs" / "demo.yaml"), {"name": "reduced-theoremqa", "stages": {
        "prepare": {"params": {"prepare": {"train_ids": str(tmp_path / "train_ids.txt"), "heldout_ids": str(tmp_path / "heldout_ids.txt"),
                                           "miner": {"query_max_len": 64, "passage_max_len": 64}}}},
        "synthesize": {"params": {"remixer": {"n_sources": 8, "keep_k": 3, "generation_sampling": {"max_tokens": 40},
                                              "reasoner": {"sampling": {"max_tokens": 16}}}}},
        "train_synthetic": {"params": {"train": {**tiny, "max_steps": 1}}},
        "train_basic": {"params": {"train": {**tiny, "max_steps": 2}}},
        "train_ri": {"params": {"train": {**tiny, "max_steps": 2, "loss": {"ri_start_step": 1}}, "intensity_samples": 4}},
        "evaluate": {"params": {"evaluation": {"query_max_len": 64, "passage_max_len": 64}}}}})


def test_reduced_theoremqa_demo_through_papermill(tmp_path, monkeypatch):
    "The demo's profile end to end: prepare -> ReMixer -> three trainings -> the four-row table -> report; resumable."
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    profile = reduced_demo(tmp_path)
    cfg = tmp_path / "reduced.yaml"
    cfg.write_text(yaml.safe_dump(profile, sort_keys=False))
    run = run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    stages = list(profile["stages"])
    assert stages == ["prepare", "synthesize", "train_synthetic", "train_basic", "train_ri", "evaluate", "report"]
    for stage in stages: assert (run / stage / "DONE").exists() and (run / stage / f"{stage}.ipynb").exists(), stage
    prep = json.loads((run / "prepare" / "prepare.json").read_text())
    assert (prep["rows"], prep["heldout_queries"], prep["q_prime"]["none"], prep["q_prime"]["file"]) == (24, 12, 14, 10)
    assert prep["documents"] == 354                                   # 10 of the 24 training questions have a text solution (q′)
    held_gold = set((run / "prepare" / "heldout_gold_ids.txt").read_text().split())
    rows = [json.loads(l) for l in (run / "synthesize" / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["meta"]["dataset"] == "theoremqa-mini" for r in rows)
    sources = [json.loads(l)["id"] for l in (run / "synthesize" / "remixer" / "theoremqa_theorems" / "sources.jsonl").read_text().splitlines()]
    assert sources and not set(sources) & held_gold                   # the held-out questions' theorems are never sources
    assert (run / "synthesize" / "remixer" / "theoremqa_theorems" / "contamination.json").exists()
    ri = yaml.safe_load((run / "train_ri" / "train_config.yaml").read_text())
    assert ri["loss"]["mode"] == "ri" and len(ri["data"]) == 2          # the labelled rows and the synthetic ones
    saved = json.loads((run / "train_basic" / "model" / "reasonembed.json").read_text())
    assert saved["training_data"] == {"theoremqa-mini": 24 + len(rows)}
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert [r["model"] for r in ev["tables"]["held-out"]] == ["base", "synthetic only", "Basic", "RI"]
    assert all(0 <= r["Avg"] <= 100 for r in ev["tables"]["held-out"])
    report = (run / "report.md").read_text()
    for part in ("## Labelled data", "## Synthesis", "## Training", "## Retrieval", "Stage times", "| synthetic only |"):
        assert part in report, part
    before = {s: (run / s / "DONE").stat().st_mtime_ns for s in stages}
    (run / "evaluate" / "DONE").unlink()
    resume_run(run, progress=False)
    assert all((run / s / "DONE").stat().st_mtime_ns == before[s] for s in stages if s not in ("evaluate", "report"))
    ev2 = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert ev2["tables"] == ev["tables"]                                # a resumed evaluation gives the same table


def test_bad_parameters_fail_before_any_work(tmp_path):
    "A stage with inconsistent values stops with a message naming the parameter: at --check, before the run folder is made."
    from reasonembed.config import ConfigError
    from reasonembed.pipeline import StageError
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"name": "bad", "stages": {"evaluate": {"notebook": "22_evaluate", "params": {
        "models": "minilm,minilm", "labels": "only-one", "heldout_dir": "", "benchmarks": {"bright": "hub"}}}}}))
    with pytest.raises(ConfigError, match=r"bad.yaml:9: stage 'evaluate', key 'labels': 1 labels for 2 models"):   # benchmarks: 2 lines above it
        run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    cfg.write_text(yaml.safe_dump({"name": "bad", "stages": {"evaluate": {"notebook": "22_evaluate", "params": {
        "models": "minilm", "labels": "", "heldout_dir": ""}}}}))
    with pytest.raises(ConfigError, match=r"key 'heldout_dir': nothing to evaluate on"):
        run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    # a training stage whose data is another stage's file, and no such stage: it never trains on other data
    cfg.write_text(yaml.safe_dump({"name": "bad", "stages": {"train": {"notebook": "21_train", "params": {
        "data": "@synthesize/train.jsonl"}}}}))
    with pytest.raises(ConfigError, match=r"key 'data': '@synthesize/train.jsonl': no stage 'synthesize' before 'train'"):
        run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    assert not (tmp_path / "outputs").exists()                         # no run folder for a config that cannot run
    # a data file that is not there when the stage runs: the stage's own one-line error
    cfg.write_text(yaml.safe_dump({"name": "bad", "stages": {"train": {"notebook": "21_train", "params": {
        "data": str(tmp_path / "missing.jsonl"), "intensity_samples": 0}}}}))
    with pytest.raises(StageError, match=r"stage 'train' failed .*missing.jsonl: no such file or folder"):
        run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
