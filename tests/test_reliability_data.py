"""Reliability of the data side (issue 28): reuse only what the same data made (prepare's kept rows, the evaluation's
finished tasks, the corpus-embedding cache), no number from nothing (a task without a scorable query), `eval` and
`prepare` reading input alike (one reader, the same messages), and bad bytes, bad rows and a file as the output folder
as one error line naming file and line."""
import io, json, logging, shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from reasonembed.batching import load_train_samples
from reasonembed.cli import main
from reasonembed.data import DataError, write_jsonl
from reasonembed.evaluation import HEADLINE, EvalConfig, evaluate
from reasonembed.prepare import PrepareConfig, demo_labelled_set, prepare
from reasonembed.testing import HashEmbedder


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def logged():
    "The messages the reasonembed loggers emit during the test (their root does not propagate to pytest's)."
    lines = []
    h = logging.Handler(); h.emit = lambda r: lines.append(r.getMessage())
    root = logging.getLogger("reasonembed"); root.addHandler(h)
    yield lines
    root.removeHandler(h)


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    return demo_labelled_set(tmp_path_factory.mktemp("labelled") / "set", n_queries=8)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rows(p: Path) -> list[dict]:
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]


def _set_line(p: Path, line: int, text: str | bytes):
    "Replace line `line` (1-based) of `p` by `text` (bytes are written as they are)."
    lines = p.read_bytes().splitlines()
    lines[line - 1] = text if isinstance(text, bytes) else text.encode()
    p.write_bytes(b"\n".join(lines) + b"\n")


# --- item 1: reuse only what the same data made -------------------------------------------------------------------

def test_prepare_rerun_after_an_input_edit_gets_the_new_rows(demo_set, tmp_path, logged):
    src = _copy(demo_set, tmp_path / "set")
    cfg = PrepareConfig(source=str(src), task="pydoc", reasoning_field="reasoning", n_negatives=0, heldout_fraction=0.25)
    out = tmp_path / "out"
    prepare(cfg, out)
    ex = src / "examples" / "pydoc.jsonl"
    rows = _rows(ex)
    train_ids = {r["id"].split("/", 1)[1] for r in _rows(out / "train.jsonl")}
    i = next(k for k, r in enumerate(rows) if r["id"] in train_ids)
    _set_line(ex, i + 1, json.dumps({**rows[i], "query": "A question edited after the first run?"}))
    logged.clear()
    prepare(cfg, out)                                                  # the same config, into the same folder
    texts = [r["query"] for r in _rows(out / "train.jsonl")]
    assert "A question edited after the first run?" in texts           # the new data, not the kept rows
    assert any(f"{ex} changed since" in m and "preparing again" in m for m in logged), logged
    logged.clear()
    prepare(cfg, out)                                                  # unchanged now: kept
    assert any("prepared before with this config and these input files; kept" in m for m in logged), logged


def _bright(root: Path, gold2: str = "d1", task: str = "t") -> Path:
    write_jsonl(root / "documents" / f"{task}.jsonl", [{"id": f"d{i}", "content": c} for i, c in enumerate(
        ["cells divide by mitosis", "planets orbit the sun", "rivers carve valleys", "volcanoes erupt molten rock"])])
    write_jsonl(root / "examples" / f"{task}.jsonl", [
        {"id": "q1", "query": "how do cells divide?", "gold_ids": ["d0"], "excluded_ids": []},
        {"id": "q2", "query": "what orbits the sun?", "gold_ids": [gold2], "excluded_ids": []}])
    return root


def test_eval_rerun_after_an_input_edit_gets_the_new_numbers(tmp_path, logged):
    root, out = _bright(tmp_path / "bench"), tmp_path / "out"
    args = ["eval", "--model", "bm25", "--data-dir", root, "--set", f"output_dir={out}", "show_progress=false"]
    rc, first, err = _run(*args)
    assert rc == 0, err
    assert "| **ours: bm25** | 100.0 | 100.0 |" in first
    _bright(root, gold2="d2")                                          # the examples file changes between the runs
    logged.clear()
    rc, second, err = _run(*args)
    assert rc == 0, err
    new = json.loads((out / "results.json").read_text())["average"][HEADLINE]
    assert new < 1.0 and "| **ours: bm25** | 100.0 |" not in second, second
    assert any("t: the task's data changed since" in m and "evaluating again" in m for m in logged), logged


def test_corpus_cache_encodes_an_edited_corpus_again(tmp_path, logged):
    root = _bright(tmp_path / "bench")
    cfg = EvalConfig(model="hash", data_dir=str(root), cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "o1"),
                     show_progress=False)
    emb = HashEmbedder()
    r1 = evaluate(cfg, embedder=emb)
    assert emb.corpus_calls == 1
    docs = root / "documents" / "t.jsonl"
    _set_line(docs, 2, json.dumps({"id": "d1", "content": "rivers carve valleys too"}))   # q2's gold now reads like d2
    logged.clear()
    import dataclasses
    r2 = evaluate(dataclasses.replace(cfg, output_dir=str(tmp_path / "o2")), embedder=emb)
    assert emb.corpus_calls == 2                                       # not served the old corpus's embeddings
    assert r2["tasks"]["t"]["mean"] != r1["tasks"]["t"]["mean"]
    assert any("corpus t (" in m and "changed since it was cached in" in m for m in logged), logged


# --- item 2: no number from nothing -------------------------------------------------------------------------------

def test_a_task_without_a_scorable_query_is_left_out_and_marked(tmp_path):
    root = _bright(tmp_path / "bench", task="good")
    write_jsonl(root / "documents" / "nogold.jsonl", _rows(root / "documents" / "good.jsonl"))
    write_jsonl(root / "examples" / "nogold.jsonl", [{"id": "q1", "query": "how do cells divide?", "gold_ids": [], "excluded_ids": []}])
    out = tmp_path / "out"
    rc, table, err = _run("eval", "--model", "bm25", "--data-dir", root, "--set", f"output_dir={out}", "show_progress=false")
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["left_out"] == ["nogold"] and res["average"][HEADLINE] == 1.0      # not (1.0 + 0.0) / 2
    assert "| **ours: bm25** | 100.0 | 100.0 | no gold† |" in table and "| 0.0 |" not in table, table
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", root, "--set", f"output_dir={tmp_path / 'o2'}", "strict_gold=true")
    assert rc == 2 and f"{root}/examples/nogold.jsonl (task nogold): no scorable query" in err, err


@pytest.mark.parametrize("which", ["examples", "documents"])
def test_an_empty_query_or_document_file_is_an_error_naming_it(tmp_path, which):
    root = _bright(tmp_path / "bench")
    (root / which / "t.jsonl").write_text("\n")
    want = f"{root}/{which}/t.jsonl: no {'queries' if which == 'examples' else 'documents'} (the file is empty)"
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", root, "--set", f"output_dir={tmp_path / 'o'}")
    assert rc == 2 and want in err, err
    rc, _, err = _run("prepare", "--source", root, "--task", "t", "--out", tmp_path / "p", "--set", "n_negatives=0")
    assert rc == 2 and want in err, err


def test_an_empty_r2med_query_file_is_an_error_naming_it(tmp_path):
    from reasonembed.testing import write_r2med_fixture
    root = write_r2med_fixture(tmp_path / "r2med")
    (root / "Biology" / "query.jsonl").write_text("")
    rc, _, err = _run("eval", "--model", "bm25", "--benchmark", "r2med", "--data-dir", root, "--set", f"output_dir={tmp_path / 'o'}")
    assert rc == 2 and f"{root}/Biology/query.jsonl: no queries (the file is empty)" in err, err


# --- item 6: eval checks its input as prepare does, with the same messages ---------------------------------------

CASES = {   # a mistake in line 2 of the documents file -> the message both commands give
    "list as text": (lambda r: {**r, "content": ["two", "parts"]}, "document '{id}': field 'content': expected text, got list"),
    "empty text": (lambda r: {**r, "content": "  "}, "document '{id}': field 'content': empty text (empty_documents: drop"),
    "repeated id": (None, "document id '{id}' repeated (first at {docs}:1)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_eval_and_prepare_refuse_the_same_document_mistake_alike(demo_set, tmp_path, case):
    src = _copy(demo_set, tmp_path / "set")
    docs = src / "documents" / "pydoc.jsonl"
    rows = _rows(docs)
    edit, msg = CASES[case]
    new = edit(rows[1]) if edit else {**rows[1], "id": rows[0]["id"]}
    _set_line(docs, 2, json.dumps(new))
    want = f"{docs}:2: " + msg.format(id=new["id"], docs=docs)
    rc_p, _, err_p = _run("prepare", "--source", src, "--task", "pydoc", "--out", tmp_path / "p", "--set", "n_negatives=0")
    rc_e, _, err_e = _run("eval", "--model", "bm25", "--data-dir", src, "--set", f"output_dir={tmp_path / 'e'}")
    assert (rc_p, rc_e) == (2, 2), (err_p, err_e)
    assert want in err_p and want in err_e, (want, err_p, err_e)
    assert err_p.split("error: ", 1)[1] == err_e.split("error: ", 1)[1]      # one reader: the very same message


def test_eval_drops_empty_documents_when_asked_and_counts_them(demo_set, tmp_path, logged):
    src = _copy(demo_set, tmp_path / "set")
    docs = src / "documents" / "pydoc.jsonl"
    rows = _rows(docs)
    _set_line(docs, 2, json.dumps({**rows[1], "content": ""}))
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", src, "--set", f"output_dir={tmp_path / 'e'}",
                      "empty_documents=drop", "show_progress=false")
    assert rc == 0, err
    assert json.loads((tmp_path / "e" / "results.json").read_text())["tasks"]["pydoc"]["n_docs"] == len(rows) - 1
    assert any("1 empty document(s) dropped (empty_documents: drop)" in m for m in logged), logged


# --- from item 5: bad bytes, bad rows, a file as the output folder ------------------------------------------------

def test_non_utf8_input_names_file_line_and_byte_offset(demo_set, tmp_path):
    src = _copy(demo_set, tmp_path / "set")
    ex = src / "examples" / "pydoc.jsonl"
    first = ex.read_bytes().split(b"\n")[0]
    _set_line(ex, 2, b'{"id": "x", "query": "caf\xe9"}')
    want = f"{ex}:2: not UTF-8 text: byte 0xe9 at byte offset {len(first) + 1 + 25} of the file"
    rc, _, err = _run("prepare", "--source", src, "--task", "pydoc", "--out", tmp_path / "p", "--set", "n_negatives=0")
    assert rc == 2 and want in err, err
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", src, "--set", f"output_dir={tmp_path / 'e'}")
    assert rc == 2 and want in err, err
    train = tmp_path / "train.jsonl"
    train.write_bytes(b'{"id": "a", "domain": "d", "instruction": "i", "query": "q\xff", "pos": ["p"]}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: not UTF-8 text: byte 0xff at byte offset 58"):
        load_train_samples(str(train))


def test_a_row_that_is_a_bare_number_names_file_and_line(demo_set, tmp_path):
    src = _copy(demo_set, tmp_path / "set")
    docs = src / "documents" / "pydoc.jsonl"
    _set_line(docs, 3, "42")
    want = f"{docs}:3: expected a JSON object, got int"
    rc, _, err = _run("prepare", "--source", src, "--task", "pydoc", "--out", tmp_path / "p", "--set", "n_negatives=0")
    assert rc == 2 and want in err, err
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", src, "--set", f"output_dir={tmp_path / 'e'}")
    assert rc == 2 and want in err, err
    train = tmp_path / "train.jsonl"
    train.write_text('{"id": "a", "domain": "d", "instruction": "i", "query": "q", "pos": ["p"]}\n7\n')
    with pytest.raises(DataError, match="train.jsonl:2: expected a JSON object"):
        load_train_samples(str(train))


def test_out_naming_an_existing_file_is_one_clear_error(demo_set, tmp_path):
    f = tmp_path / "results.md"
    f.write_text("not a folder")
    rc, _, err = _run("prepare", "--source", demo_set, "--task", "pydoc", "--out", f, "--set", "n_negatives=0")
    assert rc == 2 and err.strip() == f"reasonembed prepare: error: --out {f}: it is a file, not a folder: give a folder (a new one, or one written before)", err
    rc, _, err = _run("eval", "--model", "bm25", "--data-dir", demo_set, "--set", f"output_dir={f}")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f"output_dir {f}: it is a file" in err, err
    rc, _, err = _run("eval", "--model", "bm25,bm25x", "--data-dir", demo_set, "--set", f"output_dir={f / 'sub'}")
    assert rc == 2 and f"output_dir {f}/sub: {f} is a file" in err, err
