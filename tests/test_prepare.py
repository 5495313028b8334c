"""`reasonembed prepare` and the labelled-data profile: a labelled set (BRIGHT layout, R2MED layout) → training rows
and a held-out benchmark; bad input stops with the file and line; prepare → train Basic and RI → evaluate → report
end to end through papermill, with every stage's progress and the summary in the terminal."""
import io, json, shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from reasonembed.cli import main
from reasonembed.data import write_jsonl
from reasonembed.pipeline import resume_run, run_pipeline, run_summary
from reasonembed.profiles import load_run_config
from reasonembed.prepare import demo_labelled_set

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["prepare", *map(str, args)])
    return rc, out.getvalue(), err.getvalue()


def _edit(path: Path, line: int, new: str):
    lines = path.read_text().splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    return demo_labelled_set(tmp_path_factory.mktemp("labelled") / "set", n_queries=16)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _r2med(root: Path) -> Path:
    write_jsonl(root / "corpus.jsonl", [{"id": f"p{i}", "text": f"passage {i}"} for i in range(4)])
    write_jsonl(root / "query.jsonl", [{"id": "q1", "text": "first?"}, {"id": "q2", "text": "second?"}])
    write_jsonl(root / "qrels.jsonl", [{"q_id": "q1", "p_id": "p0", "score": 1}, {"q_id": "q2", "p_id": "p1", "score": 1}])
    return root


@pytest.mark.parametrize("case", ["unknown_qid", "gold_missing_r2med", "gold_missing_bright", "empty_doc", "empty_query", "overlap"])
def test_bad_input_names_file_and_line(case, demo_set, tmp_path):
    "Each bad input stops `reasonembed prepare` (exit 2) before any model loads, with the file and line at fault."
    if case in ("unknown_qid", "gold_missing_r2med"):
        src = _r2med(tmp_path / "r2")
        bad = '{"q_id": "q7", "p_id": "p1", "score": 1}' if case == "unknown_qid" else '{"q_id": "q2", "p_id": "p9", "score": 1}'
        _edit(src / "qrels.jsonl", 2, bad)
        args, where = ["--layout", "r2med", "--task", "."], f"{src}/qrels.jsonl:2: "
        want = "unknown query id 'q7'" if case == "unknown_qid" else "gold id 'p9' is not in the corpus"
    else:
        src = _copy(demo_set, tmp_path / "set")
        args = ["--task", "pydoc"]
        ex, docs = src / "examples" / "pydoc.jsonl", src / "documents" / "pydoc.jsonl"
        if case == "gold_missing_bright":
            row = json.loads(ex.read_text().splitlines()[2]); _edit(ex, 3, json.dumps({**row, "gold_ids": ["nowhere"]}))
            where, want = f"{ex}:3: ", "gold id 'nowhere' is not in the corpus"
        elif case == "empty_doc":
            row = json.loads(docs.read_text().splitlines()[4]); _edit(docs, 5, json.dumps({**row, "content": " "}))
            where, want = f"{docs}:5: ", "field 'content': empty text"
        elif case == "empty_query":
            row = json.loads(ex.read_text().splitlines()[1]); _edit(ex, 2, json.dumps({**row, "query": ""}))
            where, want = f"{ex}:2: ", "field 'query': empty text"
        else:
            ids = [json.loads(l)["id"] for l in ex.read_text().splitlines()]
            (tmp_path / "held.txt").write_text("\n".join(ids[:3]) + "\n")
            (tmp_path / "train.txt").write_text("\n".join(ids[2:]) + "\n")
            args += ["--set", f"heldout_ids={tmp_path / 'held.txt'}", f"train_ids={tmp_path / 'train.txt'}"]
            where, want = f"{tmp_path / 'train.txt'}:1: ", f"is also held out ({tmp_path / 'held.txt'}:3): the split overlaps"
    rc, _, err = _cli("--source", src, "--out", tmp_path / "out", *args)
    assert rc == 2, err
    assert f"reasonembed prepare: error: {where}" in err and want in err, err
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_prepare_cli_writes_rows_heldout_and_stats(demo_set, tmp_path):
    "MiniLM mines the negatives; the held-out queries never become rows; a rerun keeps the output."
    ids = [json.loads(l)["id"] for l in (demo_set / "examples" / "pydoc.jsonl").read_text().splitlines()]
    (tmp_path / "held.txt").write_text(f"{ids[5]}\n{ids[2]}\n")
    args = ["--source", demo_set, "--task", "pydoc", "--out", tmp_path / "out", "--set", "n_negatives=3", "rank_window=[1, 20]",
            "reasoning_field=reasoning", f"heldout_ids={tmp_path / 'held.txt'}", "miner.query_max_len=64", "miner.passage_max_len=96"]
    rc, out, err = _cli(*args)
    assert rc == 0, err
    st = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert (st["rows"], st["heldout_queries"], st["negatives_per_row"]["min"], st["q_prime"]["coverage"]) == (14, 2, 3, 1.0)
    rows = [json.loads(l) for l in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert not {r["id"] for r in rows} & {f"pydoc/{ids[5]}", f"pydoc/{ids[2]}"}
    assert all(not set(r["neg_ids"]) & set(r["pos_ids"]) and min(r["meta"]["neg_ranks"]) >= 1 for r in rows)
    held = [json.loads(l)["id"] for l in (tmp_path / "out" / "heldout" / "examples" / "pydoc.jsonl").read_text().splitlines()]
    assert held == [ids[2], ids[5]] and "q' coverage" in out
    before = (tmp_path / "out" / "train.jsonl").stat().st_mtime_ns
    assert _cli(*args)[0] == 0 and (tmp_path / "out" / "train.jsonl").stat().st_mtime_ns == before


def test_q_prime_sources_counted_in_order_and_the_hint_labelled(demo_set, tmp_path):
    "Field, side file and hint, in the order asked: each counted in prepare.json and the table; the hint only when listed, labelled."
    ids = [json.loads(l)["id"] for l in (demo_set / "examples" / "pydoc.jsonl").read_text().splitlines()]
    side = tmp_path / "why.jsonl"
    write_jsonl(side, [{"id": i, "why": f"because {i}"} for i in ids[:5]] + [{"id": "not-a-query", "why": "x"}])
    base = ["--source", demo_set, "--task", "pydoc", "--set", "n_negatives=0", "heldout_fraction=0", f"reasoning_file={side}",
            "reasoning_file_field=why"]
    rc, out, err = _cli(*base, "--out", tmp_path / "a")                       # the default order: field, file, llm; no field set
    assert rc == 0, err
    qp = json.loads((tmp_path / "a" / "prepare.json").read_text())["q_prime"]
    assert (qp["file"], qp["none"], qp["hint"], qp["reasoning_file"]["ids_not_in_set"]) == (5, 11, 0, 1)
    assert "hint_ablation" not in qp and "HINT" not in out and "1 not in the set" in out
    rc, out, err = _cli(*base, "reasoning_field=reasoning", "q_prime_order=[file, field, hint]", "--out", tmp_path / "b")
    assert rc == 0, err
    qp = json.loads((tmp_path / "b" / "prepare.json").read_text())["q_prime"]
    assert (qp["file"], qp["field"], qp["hint"], qp["none"]) == (5, 11, 0, 0)  # the file first, the field for the rest
    rc, out, err = _cli(*base, "q_prime_order=[file, hint]", "--out", tmp_path / "c")
    qp = json.loads((tmp_path / "c" / "prepare.json").read_text())["q_prime"]
    assert rc == 0 and (qp["file"], qp["hint"], qp["coverage"]) == (5, 11, round(5 / 16, 4)), (err, qp)
    assert "ORACLE" in qp["hint_ablation"] and "ABLATION: hint" in out and "HINT 11 (oracle ablation)" in out
    _edit(side, 3, '{"id": "%s"}' % ids[2])                                   # a row without its text: file, line and field
    rc, _, err = _cli(*base, "--out", tmp_path / "d")
    assert rc == 2 and f"{side}:3: field 'why': missing" in err, err

def test_a_profile_key_of_prepare_is_checked(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "labelled.yaml").read_text())
    cfg["stages"]["prepare"]["params"]["prepare"]["n_negative"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception, match="unknown key 'n_negative' for PrepareConfig \\(did you mean 'n_negatives'\\?\\)"):
        load_run_config(tmp_path / "bad.yaml")


TINY = {"embedder": {"model": "minilm", "query_max_len": 48, "passage_max_len": 96}, "batching": {"batch_size": 4, "group_size": 3},
        "save_every": 1}


def test_labelled_profile_end_to_end(demo_set, tmp_path, monkeypatch):
    "The profile of configs/labelled*.yaml, reduced: prepare → train Basic and RI → evaluate on the held-out part → report."
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    profile = yaml.safe_load((ROOT / "configs" / "labelled-demo.yaml").read_text())
    st = profile["stages"]
    st["prepare"]["params"]["prepare"] = {"source": str(demo_set), "task": "pydoc", "reasoning_field": "reasoning", "heldout_fraction": 0.25,
                                          "n_negatives": 2, "rank_window": [1, 30],
                                          "miner": {"model": "minilm", "query_max_len": 48, "passage_max_len": 96}}
    st["train_basic"]["params"]["train"] = {**TINY, "loss": {"mode": "basic"}, "max_steps": 2}
    st["train_ri"]["params"]["train"] = {**TINY, "loss": {"mode": "ri", "ri_start_step": 1}, "max_steps": 2}
    st["train_ri"]["params"]["intensity_samples"] = 4
    for stage in ("train_basic", "train_ri"): st[stage]["params"]["seeds"] = [0, 1]     # the profile's 3 seeds, reduced
    st["evaluate"]["params"]["evaluation"] = {"query_max_len": 48, "passage_max_len": 96}
    cfg = tmp_path / "labelled.yaml"
    cfg.write_text(yaml.safe_dump(profile, sort_keys=False))
    shown = io.StringIO()
    run = run_pipeline(cfg, output_root=str(tmp_path / "outputs"), out=shown)
    for stage in st:
        assert (run / stage / "DONE").exists(), stage
    prep = json.loads((run / "prepare" / "prepare.json").read_text())
    assert (prep["rows"], prep["heldout_queries"], prep["domain"]) == (12, 4, "pydoc")
    for stage, mode in [("train_basic", "basic"), ("train_ri", "ri")]:
        s = json.loads((run / stage / "train_summary.json").read_text())
        assert (s["mode"], s["steps"], s["samples"]) == (mode, 2, 12) and sorted(s["seeds"]) == ["0", "1"]
        seeds = json.loads((run / stage / "seeds.json").read_text())["models"]
        assert all((run / stage / f"seed-{k}" / "model" / "modules.json").exists() for k in seeds)
        assert [yaml.safe_load((run / stage / f"seed-{k}" / "train_config.yaml").read_text())["seed"] for k in ("0", "1")] == [0, 1]
    ev = json.loads((run / "evaluate" / "evaluation.json").read_text())
    rows = [r["model"] for r in ev["tables"]["held-out"]]
    assert rows == ["base", "Basic seed 0", "Basic seed 1", "Basic", "RI seed 0", "RI seed 1", "RI"], rows
    assert all(0 <= r["Avg"] <= 100 for r in ev["tables"]["held-out"])
    t = {r["model"]: r["Avg"] for r in ev["tables"]["held-out"]}
    assert abs(t["Basic"] - (t["Basic seed 0"] + t["Basic seed 1"]) / 2) < 1e-9            # the group row: the seeds' mean
    assert ev["baseline"] == "Basic" and "RI" in ev["significance"]["held-out"]["vs_baseline"]   # RI against Basic, tested
    assert [r["model"] for r in ev["seed_tables"]["held-out"]] == ["Basic", "RI"]
    assert "mean ± sd over seeds" in (run / "evaluate" / "evaluation.md").read_text()
    report = (run / "report.md").read_text()
    assert "## Retrieval" in report and "## Labelled data (`prepare`)" in report and "12 training rows" in report
    # the terminal saw each stage's own progress while it ran
    lines = shown.getvalue().splitlines()
    def saw(stage, text): return any(l.startswith(f"[{stage}] ") and text in l for l in lines)
    assert saw("prepare", "encode corpus") and saw("prepare", "mining: 100%") and saw("prepare", "training rows"), lines
    for stage in ("train_basic", "train_ri"):
        assert saw(stage, "train: 100%") and saw(stage, "step 2/2 loss"), stage
    assert saw("evaluate", "ndcg_cut_10") and saw("evaluate", "encode corpus") and saw("report", "wrote"), lines
    summary = run_summary(run)
    assert "| base |" in summary and "| RI |" in summary and "time per stage: prepare" in summary
    assert f"report: {run / 'report.md'}" in summary
    # each seed resumes on its own: a finished seed is kept, an interrupted one continues
    kept = (run / "train_basic" / "seed-0" / "model" / "reasonembed.json").stat().st_mtime_ns
    (run / "train_basic" / "DONE").unlink(); (run / "train_basic" / "seed-1" / "train_state.json").unlink()
    resume_run(run, progress=False)
    assert (run / "train_basic" / "seed-0" / "model" / "reasonembed.json").stat().st_mtime_ns == kept
    assert json.loads((run / "train_basic" / "seed-1" / "train_state.json").read_text())["finished"]


def test_graded_heldout_is_scored_with_its_grades(tmp_path):
    "A BEIR set with graded qrels: prepare keeps the grades in heldout/ (R2MED layout) and 22_evaluate scores nDCG@10 with them."
    import pytrec_eval
    from reasonembed.evaluation import read_trec_run
    src = tmp_path / "graded"
    topics = ["insulin and blood sugar", "kidney filtration", "neuron signalling", "bone growth", "lung gas exchange", "liver enzymes"]
    write_jsonl(src / "corpus.jsonl", [{"_id": f"p{i}{k}", "title": t, "text": f"{k} note on {t}"}
                                       for i, t in enumerate(topics) for k in ("primary", "secondary", "passing")])
    write_jsonl(src / "queries.jsonl", [{"_id": f"q{i}", "text": f"what about {t}?"} for i, t in enumerate(topics)])
    (src / "qrels").mkdir()
    (src / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\tp{i}primary\t1\nq{i}\tp{i}secondary\t3\nq{i}\tp{i}passing\t2\n" for i in range(len(topics))))
    (tmp_path / "held.txt").write_text("q1\nq4\n")
    rc, out, err = _cli("--source", src, "--task", ".", "--layout", "r2med", "--out", tmp_path / "prep", "--set", "n_negatives=2",
                        "rank_window=[0, 18]", f"heldout_ids={tmp_path / 'held.txt'}", "miner.query_max_len=32", "miner.passage_max_len=32")
    assert rc == 0, err
    profile = {"name": "graded", "stages": {"evaluate": {"notebook": "22_evaluate", "params": {
        "models": "minilm", "labels": "base", "heldout_dir": str(tmp_path / "prep" / "heldout"), "st_check": False,
        "evaluation": {"query_max_len": 32, "passage_max_len": 32}}}}}
    (tmp_path / "graded.yaml").write_text(yaml.safe_dump(profile))
    run = run_pipeline(tmp_path / "graded.yaml", output_root=str(tmp_path / "outputs"), progress=False)
    res = run / "evaluate" / "results" / "held-out" / "base"
    assert json.loads((res / "eval_config.json").read_text())["benchmark"] == "r2med"
    graded = {q: {f"p{q[1]}{k}": g for k, g in (("primary", 1), ("secondary", 3), ("passing", 2))} for q in ("q1", "q4")}
    trec = read_trec_run(res / "runs" / "graded.trec")
    want = pytrec_eval.RelevanceEvaluator(graded, {"ndcg_cut_10"}).evaluate(trec)
    binary = pytrec_eval.RelevanceEvaluator({q: {d: 1 for d in g} for q, g in graded.items()}, {"ndcg_cut_10"}).evaluate(trec)
    got = json.loads((res / "tasks" / "graded.json").read_text())["mean"]["ndcg_cut_10"]
    mean = lambda e: sum(m["ndcg_cut_10"] for m in e.values()) / len(e)
    assert abs(got - mean(want)) < 1e-9 and abs(mean(want) - mean(binary)) > 1e-3, (got, mean(want), mean(binary))


def test_stage_progress_reaches_the_terminal_with_widgets_installed(tmp_path):
    "With ipywidgets installed (the dev extra), tqdm.auto in a kernel would draw widgets the terminal never sees."
    import ipywidgets  # noqa: F401  (the case under test)
    src = demo_labelled_set(tmp_path / "set", n_queries=8)
    profile = {"name": "widgets", "stages": {"prepare": {"notebook": "20a_prepare", "params": {"prepare": {
        "source": str(src), "task": "pydoc", "n_negatives": 2, "rank_window": [1, 10], "heldout_fraction": 0.25,
        "miner": {"model": "minilm", "query_max_len": 32, "passage_max_len": 32}}}}}}
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump(profile))
    shown = io.StringIO()
    run_pipeline(tmp_path / "widgets.yaml", output_root=str(tmp_path / "outputs"), out=shown)
    lines = shown.getvalue().splitlines()
    assert any(l.startswith("[prepare] encode corpus: 100%") for l in lines), lines
    assert any(l.startswith("[prepare] mining: 100%") for l in lines), lines
