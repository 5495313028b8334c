"""Reproduction checks (reasonembed.reproduce): expected scores with tolerances, checked in the evaluate stage and
leading the report; `compare` of two runs; the profiles' expected blocks; the authors' BM25 run slice."""
import contextlib, io, json
from pathlib import Path

import pytest
import yaml

from reasonembed.config import from_dict
from reasonembed.evaluation import EvalConfig, evaluate, write_trec_run
from reasonembed.pipeline import run_pipeline
from reasonembed.profiles import load_run_config
from reasonembed.reproduce import (ExpectedConfig, check_expected, compare_cli, compare_runs, expected_from_results,
                                   read_runs)
from reasonembed.benchmarks import BRIGHT_TASKS, REFERENCE_BRIGHT

ROOT = Path(__file__).resolve().parent.parent
ASSET = ROOT / "tests" / "assets" / "authors-runs"


def _bm25(out, **kw):
    return evaluate(from_dict(EvalConfig, {"model": "bm25", "data_dir": "theoremqa-mini", "show_progress": False,
                                           "output_dir": str(out), **kw}))


def test_expected_block_from_one_run_then_k1_changed_is_off(tmp_path):
    pinned = expected_from_results(_bm25(tmp_path / "a"), source="BM25 on theoremqa-mini, k1 0.9, b 0.4")
    assert set(pinned["scores"]) == {"theoremqa_mini", "Avg"}
    same = check_expected(_bm25(tmp_path / "b"), pinned, label="BM25")
    assert same["ok"] and same["lead"] == "reproduced within tolerance: 1 of 1 tasks and the average"
    changed = check_expected(_bm25(tmp_path / "c", bm25_k1=3.0), pinned, label="BM25 k1=3.0")
    assert not changed["ok"] and [r["status"] for r in changed["rows"]] == ["OFF", "OFF"]
    assert changed["lead"].startswith("reproduced within tolerance: 0 of 1 tasks, not the average (off: theoremqa_mini")
    # a tolerance wide enough takes the change
    assert check_expected(_bm25(tmp_path / "c", bm25_k1=3.0), pinned, tolerance=5, tolerance_average=5)["ok"]


def test_evaluate_stage_writes_reproduction_and_the_report_leads_with_it(tmp_path, monkeypatch):
    "The evaluate stage with an expected block (from a k1 0.9 run) and a reference run, evaluating BM25 with k1 3.0."
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    first = _bm25(tmp_path / "pinned")
    pinned = expected_from_results(first, source="BM25 on theoremqa-mini, k1 0.9")
    cfg = tmp_path / "stage.yaml"
    cfg.write_text(yaml.safe_dump({"name": "repro", "stages": {
        "evaluate": {"notebook": "22_evaluate", "params": {
            "models": "bm25", "labels": "BM25", "heldout_dir": "", "benchmarks": {"bright": "theoremqa-mini"}, "bm25": False,
            "st_check": False, "evaluation": {"bm25_k1": 3.0},
            "expected": {"models": {"BM25": {"pinned": pinned}}},
            "reference_runs": {"BM25": str(tmp_path / "pinned" / "runs")}}},
        "report": {"notebook": "23_report", "params": {"title": "reproduction check"}}}}, sort_keys=False))
    run = run_pipeline(cfg, output_root=str(tmp_path / "outputs"), progress=False)
    rep = json.loads((run / "evaluate" / "reproduction.json").read_text())
    assert [(c["label"], c["ok"]) for c in rep] == [("BM25", False)]
    md = (run / "evaluate" / "evaluation.md").read_text()
    assert md.startswith("### Reproduction\n\n- **BM25** (BRIGHT) vs BM25 on theoremqa-mini, k1 0.9: reproduced within tolerance: 0 of 1 tasks")
    assert "### BRIGHT/BM25 vs its reference run" in md
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    ref = ev["reference_runs"]["BRIGHT/BM25"]["theoremqa_mini"]
    assert ref["queries"] == 376 and ref["overlap@10"] < 1 and ref["p"] <= 1
    report = (run / "report.md").read_text().splitlines()
    assert report[0] == "# reproduction check"
    lead = next(i for i, l in enumerate(report) if l.startswith("Reproduction ("))
    assert lead < next(i for i, l in enumerate(report) if l.startswith("## ")), "the reproduction lead comes before every section"
    assert report[lead + 2].startswith("- **BM25** (BRIGHT) vs BM25 on theoremqa-mini, k1 0.9: reproduced within tolerance: 0 of 1")


def test_compare_two_runs_of_the_same_model(tmp_path):
    "Two BM25 runs with the same settings: overlap 1.0, tau 1, difference 0 and p = 1 (reasonembed compare)."
    _bm25(tmp_path / "a"); _bm25(tmp_path / "b")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        cmp = compare_cli(str(tmp_path / "a" / "runs"), str(tmp_path / "b" / "runs"),
                          set=["benchmark={benchmark: bright, data_dir: theoremqa-mini}", f"output_dir={tmp_path}/cmp"])
    c = cmp["theoremqa_mini"]
    assert (c["overlap@10"], c["overlap@100"], c["tau"], c["difference"], c["p"]) == (1.0, 1.0, 1.0, 0.0, 1.0)
    assert c["judged"] == 376 and c["most_different"] == []
    assert "| theoremqa_mini | 376 | 1.000 | 1.000 | 1.000 |" in out.getvalue()
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["tasks"]["theoremqa_mini"]["p"] == 1.0


def test_authors_bm25_slice_against_a_run_built_from_it(tmp_path):
    """The authors' BM25 run (theoremqa_theorems, 5 queries x top 100, their JSON layout) against a TREC run built
    from it: each query cut to its top 20 with ranks 11-20 reversed. Not a run of ours: BRIGHT's qrels and our BM25
    need the full corpus; what is checked is the reading of their layout and the measures."""
    authors = read_runs(ASSET)["theoremqa_theorems"]
    assert len(authors) == 5 and all(q.startswith("TheoremQA_") for q in authors)
    built = {}
    for q, docs in authors.items():
        top = sorted(docs, key=lambda d: (docs[d], d), reverse=True)[:20]
        top = top[:10] + top[10:][::-1]
        built[q] = {d: 20.0 - i for i, d in enumerate(top)}
    write_trec_run(built, tmp_path / "ours" / "theoremqa_theorems.trec")
    with contextlib.redirect_stdout(io.StringIO()):
        cmp = compare_cli(str(tmp_path / "ours"), str(ASSET / "theoremqa_theorems-reasoner-rewritten-query-0821.json"))
    c = cmp["theoremqa_theorems"]
    assert (c["queries"], c["overlap@10"], c["overlap@100"]) == (5, 1.0, 0.2)
    assert c["tau"] == pytest.approx(1 - 2 * 45 / 190)            # 45 of the 190 pairs of 20 documents discordant
    assert "p" not in c                                          # no qrels given: overlap and tau only


PROFILES = ["released-models.yaml", "reasonembed-qwen3-4b-released-data.yaml", "reasonembed-qwen3-8b-released-data.yaml",
            "reasonembed-llama3.1-8b-released-data.yaml"]


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_expected_blocks(name):
    "Each route-1/2 profile's evaluate stage has a valid expected block; every model it evaluates and BM25 have one."
    rc = load_run_config(ROOT / "configs" / name)
    ev = next(s for s in rc.stages if s.name == "evaluate")
    cfg = from_dict(ExpectedConfig, ev.params["expected"], where=name)
    assert (cfg.tolerance, cfg.tolerance_average) == (0.5, 0.3)
    labels = [l.strip() for l in ev.params["labels"].split(",")]
    assert {l for l in labels if "start" not in l} | {"BM25"} <= set(cfg.models)
    for label, sources in cfg.models.items():
        for key, src in sources.items():
            tasks = {t: v for t, v in src.scores.items() if t != "Avg" and src.benchmark == "BRIGHT"}
            if len(tasks) == 12 and "Avg" in src.scores:      # the average a source states is the mean of its tasks
                assert abs(sum(tasks.values()) / 12 - src.scores["Avg"]) < 0.1, (name, label, key)
            if key == "paper" and src.benchmark == "BRIGHT":  # the paper's numbers as the reference table has them
                ref = REFERENCE_BRIGHT[{"BM25": "BM25 (BM25Q)", "Qwen3-8B (start)": "Qwen3-8B-ms (start point)"}.get(label, label)]
                assert all(ref[t] == v for t, v in src.scores.items()), (name, label)
    assert "pyserini" in cfg.models["BM25"]
