"""The evaluation stage's paired tests through papermill (`22_evaluate` then `23_report` on a BRIGHT-layout fixture,
MiniLM and BM25 with BM25 as the baseline), and the evaluation block of a run profile checked by `reasonembed run
--check`: its `embedder` key by key, `embedder_overrides` of old refused."""
import contextlib, io, json

import pytest
import yaml

from reasonembed.cli import main as reasonembed
from reasonembed.evaluation import per_query_scores
from reasonembed.pipeline import run_pipeline
from reasonembed.statistics import MARKER, N_RESAMPLES, paired_test
from reasonembed.testing import write_bright_fixture


def _profile(tmp_path, **params) -> dict:
    fx = write_bright_fixture(tmp_path / "bright")
    ev = {"models": "minilm", "labels": "base", "heldout_dir": "", "benchmarks": {"bright": {"data_dir": str(fx), "tasks": "biology,leetcode"}},
          "bm25": True, "st_check": False, "evaluation": {"query_max_len": 64, "passage_max_len": 64, "cache_dir": str(tmp_path / "emb")},
          **params}
    return {"name": "significance", "stages": {"evaluate": {"notebook": "22_evaluate", "params": ev},
                                               "report": {"notebook": "23_report", "params": {"title": "significance"}}}}


def _write(tmp_path, profile) -> str:
    cfg = tmp_path / "profile.yaml"
    cfg.write_text(yaml.safe_dump(profile, sort_keys=False))
    return str(cfg)


def test_evaluate_stage_compares_against_the_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = run_pipeline(_write(tmp_path, _profile(tmp_path, baseline="BM25")), output_root=str(tmp_path / "outputs"), progress=False)
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    sig = ev["significance"]["BRIGHT"]
    assert (ev["baseline"], sig["baseline"], list(sig["vs_baseline"]), sig["n_resamples"]) == ("BM25", "BM25", ["base"], N_RESAMPLES)
    scores = {label: per_query_scores(json.loads((run / "evaluate" / "results" / "BRIGHT" / label / "results.json").read_text()))
              for label in ("base", "BM25")}
    for task in ("biology", "leetcode"):                  # each p-value is the paired test of the two per-query files
        q = list(scores["BM25"][task])
        assert sig["vs_baseline"]["base"]["tasks"][task] == paired_test([scores["base"][task][i] for i in q], [scores["BM25"][task][i] for i in q])
    avg = ev["intervals"]["BRIGHT/base"]["average"]
    assert avg["low"] <= avg["mean"] <= avg["high"] and avg["mean"] == pytest.approx(next(r for r in ev["tables"]["BRIGHT"] if r["model"] == "base")["Avg"] / 100)
    md = (run / "evaluate" / "evaluation.md").read_text()
    assert "### BRIGHT\n\nnDCG@10 × 100\n\n| model | biology | leetcode | Avg |" in md, md
    assert f"{MARKER}: differs from BM25 at p < 0.05, paired randomization test" in md and "| vs BM25 | biology | leetcode | Avg |" in md
    report = (run / "report.md").read_text()
    assert "| vs BM25 | biology | leetcode | Avg |" in report and "| model | biology | leetcode | Avg |" in report
    assert "95% bootstrap intervals of the BRIGHT averages (nDCG@10 × 100, 10,000 resamples): base " in report
    assert (run / "evaluate" / "ndcg10.png").stat().st_size > 0


def test_evaluate_stage_refuses_an_unknown_baseline(tmp_path):
    with pytest.raises(RuntimeError, match=r"baseline: 'bm25' is not one of the labels \['BM25', 'base'\]"):
        run_pipeline(_write(tmp_path, _profile(tmp_path, baseline="bm25")), output_root=str(tmp_path / "outputs"), progress=False)


@pytest.mark.parametrize("evaluation, message", [
    ({"embedder_overrides": {"dtype": "float16"}}, "unknown key 'embedder_overrides' for EvalConfig (did you mean 'embedder'?)"),
    ({"embedder": {"dtyp": "float16"}}, "key 'embedder': unknown key 'dtyp' for EmbedderConfig (did you mean 'dtype'?)"),
    ({"embedder": {"query_max_len": 300}}, "key 'embedder.query_max_len': query_max_len is the evaluation's own key"),
])
def test_run_check_reads_the_evaluation_block(tmp_path, evaluation, message):
    profile = _profile(tmp_path)
    profile["stages"]["evaluate"]["params"]["evaluation"] = evaluation
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert reasonembed(["run", _write(tmp_path, profile), "--check"]) == 2
    assert message in err.getvalue(), err.getvalue()
    good = _profile(tmp_path)
    good["stages"]["evaluate"]["params"]["evaluation"] = {"embedder": {"dtype": "float32", "backend": "hf"}}
    with contextlib.redirect_stdout(io.StringIO()) as out: assert reasonembed(["run", _write(tmp_path, good), "--check"]) == 0
    assert ": ok (evaluate, report)" in out.getvalue()
