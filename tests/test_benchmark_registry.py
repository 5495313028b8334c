"""Benchmarks as a registry (issue 29): a run profile names its benchmarks by registry name, the keys of old
(`bright_dir`, `r2med_dir`, `bright_tasks`, `r2med_tasks`) are refused by the checker with the key named, and a registered
benchmark (BRIGHT-Pro) runs through the evaluate stage from the hub (`LocalHub`)."""
import contextlib, io, json, os
from unittest import mock

import pytest
import yaml

from reasonembed.benchmarks import BENCHMARKS, BRIGHT_PRO_HUB_ID
from reasonembed.cli import main as reasonembed
from reasonembed.hub import LocalHub
from reasonembed.pipeline import run_pipeline
from reasonembed.testing import write_bright_pro_fixture, write_fixture


def _profile(tmp_path, **params) -> str:
    ev = {"models": "bm25", "labels": "BM25", "heldout_dir": "", "benchmarks": {"bright-pro": {"tasks": "biology,robotics"}},
          "st_check": False, **params}
    p = tmp_path / "profile.yaml"
    p.write_text(yaml.safe_dump({"name": "registry", "stages": {"evaluate": {"notebook": "22_evaluate", "params": ev}}}, sort_keys=False))
    return str(p)


def _check(profile) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()): rc = reasonembed(["run", profile, "--check"])
    return rc, err.getvalue()


@pytest.mark.parametrize("params, message", [
    ({"evaluation": {"bright_dir": "/data/BRIGHT"}}, "unknown key 'bright_dir' for EvalConfig"),
    ({"evaluation": {"r2med_dir": "/data/R2MED"}}, "unknown key 'r2med_dir' for EvalConfig"),
    ({"bright_dir": "hub"}, "unknown key 'bright_dir' for notebook 22_evaluate"),
    ({"r2med_tasks": "Biology"}, "unknown key 'r2med_tasks' for notebook 22_evaluate"),
    ({"benchmarks": {"brigth": "hub"}}, "key 'benchmarks': benchmark 'brigth': expected one of ['bright', 'r2med', 'bright-pro'] (did you mean 'bright'?)"),
    ({"benchmarks": {}}, "nothing to evaluate on: set heldout_dir or benchmarks"),
])
def test_run_check_refuses_the_keys_of_old_and_unknown_benchmarks(tmp_path, params, message):
    rc, err = _check(_profile(tmp_path, **params))
    assert rc == 2 and message in err, err


def test_a_fixture_per_registered_benchmark(tmp_path):
    for name, b in BENCHMARKS.items():
        root = write_fixture(name, tmp_path / name)
        assert b.layout.is_local(root), name


def test_bright_pro_through_the_evaluate_stage_from_the_hub(tmp_path):
    fx = write_bright_pro_fixture(tmp_path / "bright-pro")
    with LocalHub({BRIGHT_PRO_HUB_ID: fx}) as hub, \
         mock.patch.dict(os.environ, {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}):
        assert _check(_profile(tmp_path))[0] == 0
        run = run_pipeline(_profile(tmp_path), output_root=str(tmp_path / "outputs"), progress=False)
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert ev["benchmarks"] == ["BRIGHT-Pro"] and list(ev["result_dirs"]) == ["BRIGHT-Pro/BM25"]
    row = ev["tables"]["BRIGHT-Pro"][0]
    assert row["model"] == "BM25" and row["robotics"] == 100.0 and set(row) == {"model", "biology", "robotics", "Avg"}
    res = json.loads((run / "evaluate" / "results" / "BRIGHT-Pro" / "BM25" / "results.json").read_text())
    assert res["dataset"] == BRIGHT_PRO_HUB_ID and res["config"]["benchmark"] == "bright-pro" and res["revision"] is None
    assert "### BRIGHT-Pro" in (run / "evaluate" / "evaluation.md").read_text()
