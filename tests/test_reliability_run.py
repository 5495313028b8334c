"""Reliability of `reasonembed run` under bad configs, failures and reruns (issue 28): `--check` catches what a run
would fail on (or silently get wrong) minutes later, a failed stage ends with one line, a rerun into the same run
folder recomputes what changed, one process per run folder.

Most tests stop at `--check` (no kernel); two run the evaluation notebook on the tiny BRIGHT fixture with MiniLM.
"""
import json, subprocess, sys
from pathlib import Path

import pytest
import yaml

from reasonembed.cli import main
from reasonembed.core import UserError
from reasonembed.pipeline import StageError, execute_stages, resume_run, run_pipeline
from reasonembed.profiles import parse_run_config
from reasonembed.testing import write_bright_fixture

# a tiny profile with known line numbers (the tests name them)
PROFILE = """name: checks
stages:
  prepare:
    notebook: 20a_prepare
    params:
      demo_queries: 12
  synthesize:
    notebook: 20_synthesize
    params:
      heldout_fraction: 0.25
  train:
    notebook: 21_train
    params:
      data: '@prepare/train.jsonl'
      intensity_samples: 0
  evaluate:
    notebook: 22_evaluate
    params:
      models: minilm,@train/model
      labels: base,trained
      heldout_dir: '@prepare/heldout'
  report:
    notebook: 23_report
"""


@pytest.fixture
def profile(tmp_path):
    p = tmp_path / "checks.yaml"
    p.write_text(PROFILE)
    return p


def _check(capsys, cfg, text=None, sets=()):
    if text is not None: cfg.write_text(text)
    rc = main(["run", str(cfg), "--check", *(["--set", *sets] if sets else [])])
    out = capsys.readouterr()
    return rc, out.err.strip()


def test_the_profile_passes(profile, capsys):
    assert _check(capsys, profile) == (0, "")


def test_a_typo_in_a_stage_reference_fails_check(profile, capsys):
    "`@nosuch/model` in evaluate.models passed --check and the run dropped that model's row; now --check names the key's line."
    rc, err = _check(capsys, profile, PROFILE.replace("models: minilm,@train/model", "models: minilm,@nosuch/model"))
    assert rc == 2
    assert f"{profile}:19: stage 'evaluate', key 'models': '@nosuch/model': no stage 'nosuch' before 'evaluate'" in err, err
    rc, err = _check(capsys, profile, PROFILE.replace("@train/model", "@train/modle"))
    assert rc == 2 and "stage 'train' (21_train) does not write 'modle' (did you mean 'model'?)" in err, err
    rc, err = _check(capsys, profile, PROFILE.replace("data: '@prepare/train.jsonl'", "data: '@evaluate/train.jsonl'"))
    assert rc == 2 and f"{profile}:14: stage 'train', key 'data': '@evaluate/train.jsonl': stage 'evaluate' runs after stage 'train'" in err, err


def test_values_out_of_range_fail_check(profile, capsys):
    rc, err = _check(capsys, profile, PROFILE.replace("heldout_fraction: 0.25", "heldout_fraction: 1.5"))
    assert rc == 2 and f"{profile}:10: stage 'synthesize', key 'heldout_fraction': 1.5 is out of range: expected a value in [0, 1)" in err, err
    rc, err = _check(capsys, profile, PROFILE, sets=["prepare.prepare.heldout_fraction=1.0"])       # a library config's field
    assert rc == 2 and ("--set 'prepare.prepare.heldout_fraction=1.0': stage 'prepare', prepare: key 'heldout_fraction': "
                        "1.0 is out of range: expected a value in [0, 1)") in err, err
    rc, err = _check(capsys, profile, sets=["train.train.warmup_ratio=-0.1"])
    assert rc == 2 and "train: key 'warmup_ratio': -0.1 is out of range" in err, err


def test_label_counts_and_model_names_fail_check(profile, capsys):
    rc, err = _check(capsys, profile, sets=["evaluate.labels=only-one"])
    assert rc == 2 and "--set 'evaluate.labels=only-one': stage 'evaluate', key 'labels': 1 labels for 2 models" in err, err
    assert str(profile) not in err                                   # a --set error blames the --set argument, not the file
    rc, err = _check(capsys, profile, sets=["evaluate.models=minilm,nosuch-model"])
    assert rc == 2 and "key 'models': 'nosuch-model': no such folder, and not a short name" in err, err
    rc, err = _check(capsys, profile, sets=["train.train.embedder.model=/no/such/folder"])
    assert rc == 2 and "key 'train.embedder.model': '/no/such/folder': no such folder" in err, err
    assert _check(capsys, profile, sets=["evaluate.models=BAAI/bge-m3,@train/model"]) == (0, "")  # a well-formed hub id: not downloaded


def test_stage_errors_point_at_the_key(profile, capsys):
    "An unknown key of a stage named the `stages:` line (2); now the key's own line, in the file that says it."
    rc, err = _check(capsys, profile, PROFILE.replace("intensity_samples: 0", "intensity_sampels: 0"))
    assert rc == 2 and f"{profile}:15: stage 'train': unknown key 'intensity_sampels'" in err, err
    rc, err = _check(capsys, profile, PROFILE.replace("      intensity_samples: 0", "      intensity_samples: 0\n      train: {lrr: 1}"))
    assert rc == 2 and f"{profile}:16: stage 'train', train: unknown key 'lrr' for TrainConfig" in err, err
    rc, err = _check(capsys, profile, PROFILE, sets=["train.train.lrr=1"])
    assert rc == 2 and err.startswith("reasonembed run: error: --set 'train.train.lrr=1': stage 'train', train: unknown key 'lrr'") and str(profile) not in err, err
    base = profile.parent / "mine.yaml"                              # an inherited key: the base file's line
    base.write_text("base: checks.yaml\nname: mine\n")
    profile.write_text(PROFILE.replace("heldout_fraction: 0.25", "heldout_fraction: -1"))
    rc, err = _check(capsys, base)
    assert rc == 2 and f"{profile}:10: stage 'synthesize', key 'heldout_fraction'" in err, err


# --- runs on the tiny BRIGHT fixture (MiniLM): a failure is one line, a model is never dropped, a changed input recomputes

EVAL = {"models": "minilm", "labels": "base", "st_check": False,
        "evaluation": {"tasks": ["biology"], "query_max_len": 32, "passage_max_len": 48, "batch_size": 8}}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("REASONEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_failed_stage_is_one_line_and_a_missing_model_fails_the_stage(env):
    "A model the evaluation cannot find stops the stage (it was skipped with a note, its row left out of the table, rc 0)."
    bench = write_bright_fixture(env / "bench")
    rc = parse_run_config({"stages": {"evaluate": {"notebook": "22_evaluate", "params": {
        **EVAL, "models": "minilm,@ghost/model", "labels": "base,ghost", "heldout_dir": str(bench)}}}})
    with pytest.raises(StageError) as e:
        execute_stages(rc, env / "run", progress=False)                 # (execute_stages alone: no --check before it)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg and "Traceback" not in msg and "PapermillExecutionError" not in msg
    assert msg.startswith("stage 'evaluate' failed (22_evaluate.ipynb, cell "), msg
    assert f"ConfigError: models: @ghost/model (ghost): {env / 'run' / 'ghost' / 'model'} does not exist" in msg, msg
    assert f"[executed notebook: {env / 'run' / 'evaluate' / 'evaluate.ipynb'}; resume with: reasonembed run --resume {env / 'run'}]" in msg, msg
    assert not (env / "run" / "evaluate" / "evaluation.json").exists()


def _set_gold(bench: Path, query_id: str, gold: list[str]):
    import pyarrow as pa, pyarrow.parquet as pq
    f = next((bench / "examples").glob("biology-*.parquet"))
    rows = pq.read_table(f).to_pylist()
    for r in rows:
        if r["id"] == query_id: r["gold_ids"] = gold
    pq.write_table(pa.Table.from_pylist(rows), f)


def _score(run: Path) -> float:
    return json.loads((run / "evaluate" / "evaluation.json").read_text())["tables"]["held-out"][0]["biology"]


def test_an_input_edited_between_two_runs_gives_the_new_numbers_and_one_process_per_run_folder(env, capsys):
    bench = write_bright_fixture(env / "bench")
    cfg = env / "run.yaml"
    cfg.write_text(yaml.safe_dump({"name": "edit", "stages": {"evaluate": {"notebook": "22_evaluate", "params": {**EVAL, "heldout_dir": str(bench)}}}}))
    run = run_pipeline(cfg, output_root=str(env / "outputs"), progress=False)
    first, done = _score(run), (run / "evaluate" / "DONE").stat().st_mtime_ns
    resume_run(run, progress=False)                                   # nothing changed: nothing runs
    assert (run / "evaluate" / "DONE").stat().st_mtime_ns == done
    _set_gold(bench, "1", ["b5"])                                     # the giraffe question's gold: now the bees document
    resume_run(run, progress=False)
    marker = json.loads((run / "evaluate" / "DONE").read_text())
    assert marker["recomputed"] == f"its inputs changed since it ran ({bench.resolve()})", marker
    assert _score(run) < first                                        # the new numbers, not the kept ones

    # one process per run folder: a live holder is named; the lock of a dead one is taken over
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from reasonembed.pipeline import run_lock\n"
                               "with run_lock(sys.argv[1]): print('held', flush=True); time.sleep(120)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"another reasonembed run works in this folder \(pid {holder.pid} on .*kill {holder.pid}"):
            resume_run(run, progress=False)
        capsys.readouterr()
        assert main(["run", "--resume", str(run)]) == 2                  # the command: one line, exit status 2
        err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("reasonembed run")]
        assert len(err) == 1 and err[0].startswith(f"reasonembed run: error: {run}: another reasonembed run works in this folder (pid {holder.pid}"), err
    finally:
        holder.kill(); holder.wait()
    assert json.loads((run / ".lock").read_text())["pid"] == holder.pid    # what a killed run leaves behind
    resume_run(run, progress=False)                                   # taken over; nothing to do
    assert (run / ".lock").read_text() == ""


def test_a_task_without_a_scorable_query_is_marked_in_the_stage_tables_never_zero(env):
    "The evaluate stage's tables mark a task with no gold document (left out of Avg), where it used to show 0.0 and average it in."
    bench = write_bright_fixture(env / "bench")
    for q in ("0", "1", "2"): _set_gold(bench, q, [])                   # biology: no query has a gold document left
    rc = parse_run_config({"stages": {"evaluate": {"notebook": "22_evaluate", "params": {
        **EVAL, "heldout_dir": str(bench), "evaluation": {**EVAL["evaluation"], "tasks": ["biology", "leetcode"]}}}}})
    execute_stages(rc, env / "run", progress=False)
    summary = json.loads((env / "run" / "evaluate" / "evaluation.json").read_text())
    row = summary["tables"]["held-out"][0]
    assert summary["left_out"] == {"held-out": ["biology"]}
    assert row["Avg"] == pytest.approx(row["leetcode"]) and row["biology"] != 0.0   # Avg is leetcode's alone
    md = (env / "run" / "evaluate" / "evaluation.md").read_text()
    assert "biology (no gold†)" in md and "| 0.00 |" not in md, md
