"""mteb's own BRIGHT(v1.1) task code against our evaluator, on the same fixture and model (needs the [mteb] extra).

The fixture (`reasonembed.testing.write_bright_fixture`: biology with long documents, leetcode with excluded ids, a tie
of two identical documents; one biology document is given surrounding whitespace here) is served by `LocalHub` as
`mteb/BRIGHT` at the revision mteb's tasks pin (`reasonembed.mteb.bright_hub`). `reasonembed mteb` runs three of
BRIGHT(v1.1)'s tasks on a model saved by `Embedder.save` (a tiny random decoder: last-token pooling, a byte-level
tokenizer that sees whitespace; and MiniLM: mean pooling, scores that are not all 0) in a fresh process (the hub endpoint is read when Python starts), recording every text it encodes; our evaluator
(`reasonembed.evaluation.evaluate`, corpus embeddings kept in float32) runs the same tasks in this process, recorded
the same way. Checked: the texts encoded are the same, mteb's scores are ours as mteb rounds them (5 decimals), the
unrounded per-query nDCG@10 / recall@1 of mteb's rankings equal ours to 1e-6, excluded documents never reach mteb's
ranking, and mteb's results folder has the layout `run_mteb` documents.
"""
import importlib.util, json, os, subprocess, sys
from pathlib import Path

import pytest

if importlib.util.find_spec("mteb") is None: pytest.skip("needs mteb (make install-mteb)", allow_module_level=True)
pytestmark = pytest.mark.mteb

import pyarrow as pa
import pyarrow.parquet as pq

import reasonembed.models as models
from reasonembed.benchmarks import load_bright_task, task_instruction
from reasonembed.evaluation import EvalConfig, evaluate, evaluate_run
from reasonembed.models import Embedder
from reasonembed.mteb import MTEB_BRIGHT_REVISION, bright_hub
from reasonembed.testing import make_tiny_decoder, write_bright_fixture

TASKS = {"BrightBiologyRetrieval": ("biology", "short"), "BrightLeetcodeRetrieval": ("leetcode", "short"),
         "BrightBiologyLongRetrieval": ("biology", "long")}
MEASURE = {"short": ("ndcg_at_10", "ndcg_cut_10"), "long": ("recall_at_1", "recall_1")}   # mteb's name, pytrec_eval's
EMBEDDER = {"device": "cpu", "dtype": "float32"}
PADDED = "  Bees pollinate flowers while collecting nectar.\n"


def _recorded(calls):
    "A spy on `Embedder.encode` that appends {is_query, text} for every text encoded."
    real = models.Embedder.encode
    def spy(self, texts, is_query=False, *a, **kw):
        calls.extend({"is_query": bool(is_query), "text": t} for t in texts)
        return real(self, texts, is_query, *a, **kw)
    return spy


MODELS = {"tiny-decoder": (64, 4096), "minilm": (384, 512)}       # saved by Embedder.save: (dimension, positions)


@pytest.fixture(scope="module", params=list(MODELS))
def run(request, tmp_path_factory):
    "The fixture, the saved model, mteb's run (`reasonembed mteb` in a subprocess) and ours, each with the texts it encoded."
    d = tmp_path_factory.mktemp(f"mteb-{request.param}")
    root = write_bright_fixture(d / "BRIGHT")
    docs = pq.read_table(root / "documents" / "biology-00000-of-00001.parquet").to_pylist()
    docs[5]["content"] = PADDED                                   # as stored: our loaders and the wrapper keep the spaces
    pq.write_table(pa.Table.from_pylist(docs), root / "documents" / "biology-00000-of-00001.parquet")
    base = str(make_tiny_decoder(d / "tiny")) if request.param == "tiny-decoder" else "minilm"
    model = Embedder.from_pretrained(base, **EMBEDDER).save(d / "ri-run" / "model", training_data={"pydoc": 8})
    record, out = d / "mteb_texts.jsonl", d / "run"
    with bright_hub(root) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(d / "hf"), "HF_HUB_OFFLINE": "0", "OMP_NUM_THREADS": "1"}
        p = subprocess.run([sys.executable, str(Path(__file__).parent / "mteb_worker.py"), str(record), "--model", str(model),
                            "--benchmark", "BRIGHT(v1.1)", "--tasks", ",".join(TASKS), "--output-dir", str(out), "--set",
                            "embedder.device=cpu", "embedder.dtype=float32", "save_predictions=true", "show_progress=false"],
                           env=env, capture_output=True, text=True, timeout=900)
        requests = list(hub.requests)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    ours, texts = {}, []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models.Embedder, "encode", _recorded(texts))
        for name, (task, setting) in TASKS.items():
            ours[name] = evaluate(EvalConfig(model=str(model), data_dir=str(root), tasks=[task], setting=setting,
                                             corpus_dtype="float32", cache_dir=str(d / "cache"), output_dir=str(d / "ours" / name),
                                             embedder=EMBEDDER, show_progress=False))
    mteb_texts = [json.loads(l) for l in record.read_text().splitlines()]
    return dict(name=request.param, root=root, model=model, out=out, stdout=p.stdout, ours=ours, our_texts=texts, mteb_texts=mteb_texts,
                summary=json.loads((out / "mteb_results.json").read_text()), requests=requests)


def test_mteb_reads_the_fixture_as_mteb_BRIGHT_at_its_revision(run):
    assert any(f"/datasets/mteb/BRIGHT/resolve/{MTEB_BRIGHT_REVISION}/examples/" in r for r in run["requests"]), run["requests"]
    assert any(f"/datasets/mteb/BRIGHT/resolve/{MTEB_BRIGHT_REVISION}/long_documents/" in r for r in run["requests"])


def test_the_texts_mteb_encodes_are_the_ones_our_evaluator_encodes(run):
    pick = lambda calls, q: sorted(c["text"] for c in calls if c["is_query"] == q)
    assert pick(run["mteb_texts"], True) == pick(run["our_texts"], True)
    assert pick(run["mteb_texts"], False) == pick(run["our_texts"], False)
    queries = pick(run["mteb_texts"], True)
    for task, setting in TASKS.values():      # each query in our template with BRIGHT's instruction, not mteb's prompt
        _, qs, _ = load_bright_task(task, run["root"], setting=setting)
        for q in qs: assert f"Instruct: {task_instruction(task, setting)}\nQuery: {q.text}" in queries
    assert not any("Represent this" in t for t in queries)
    assert PADDED in pick(run["mteb_texts"], False)                 # documents as stored, without instruction


def test_mteb_scores_are_ours_as_mteb_rounds_them(run):
    for name, (task, setting) in TASKS.items():
        ours = run["ours"][name]["tasks"][task]["mean"][MEASURE[setting][1]]
        theirs = run["summary"]["tasks"][name]
        assert theirs["main_metric"] == MEASURE[setting][0]
        assert abs(theirs["main_score"] - round(ours, 5)) < 1e-9, (name, theirs["main_score"], ours)
        if setting == "short": assert abs(theirs["ndcg_at_10"] - round(ours, 5)) < 1e-9


def test_per_query_scores_of_mteb_rankings_equal_ours_to_1e_6(run):
    pred = run["out"] / "mteb" / "predictions"
    for name, (task, setting) in TASKS.items():
        p = json.loads((pred / f"{name}_predictions.json").read_text())
        mteb_run = p["default"]["standard" if setting == "short" else "long"]
        _, queries, qrels = load_bright_task(task, run["root"], setting=setting)
        theirs = evaluate_run(mteb_run, qrels)
        folder = Path(run["ours"][name]["output_dir"])
        ours = {json.loads(l)["query_id"]: json.loads(l) for l in (folder / "per_query" / f"{task}.jsonl").read_text().splitlines()}
        assert set(theirs["per_query"]) == set(ours)
        for m in ("ndcg_cut_10", "recall_1", "recall_100"):
            for qid, v in theirs["per_query"].items(): assert abs(v[m] - ours[qid][m]) <= 1e-6, (name, qid, m)
            assert abs(theirs["mean"][m] - run["ours"][name]["tasks"][task]["mean"][m]) <= 1e-6, (name, m)
        for q in queries:                                           # excluded ids: mteb's top_ranked leaves them out
            assert not set(mteb_run[q.id]) & (set(q.excluded_ids) - {"N/A"}), (name, q.id)
            assert len(mteb_run[q.id]) == len(ours_run := _trec(folder / "runs" / f"{task}.trec")[q.id])
            for doc, s in mteb_run[q.id].items(): assert abs(s - ours_run[doc]) <= 1e-5, (name, q.id, doc)


def _trec(path):
    run = {}
    for line in Path(path).read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    return run


def test_results_folder_layout_and_model_meta(run):
    s, out = run["summary"], run["out"]
    rdir = out / "mteb" / "results" / "reasonembed__ri-run-model" / s["revision"]
    assert Path(s["results_dir"]) == rdir
    assert sorted(p.name for p in rdir.iterdir()) == sorted([f"{n}.json" for n in TASKS] + ["model_meta.json", "run_settings.jsonl"])
    meta = json.loads((rdir / "model_meta.json").read_text())
    dim, positions = MODELS[run["name"]]
    assert (meta["name"], meta["embed_dim"], meta["max_tokens"], meta["similarity_fn_name"]) == ("reasonembed/ri-run-model", dim, positions, "dot")
    assert meta["loader_kwargs"]["model"] == str(run["model"]) and meta["use_instructions"] is True
    res = json.loads((rdir / "BrightLeetcodeRetrieval.json").read_text())
    assert res["dataset_revision"] == MTEB_BRIGHT_REVISION and res["task_name"] == "BrightLeetcodeRetrieval"
    assert (out / "mteb_results.md").read_text().startswith("mteb ") and "BrightBiologyLongRetrieval" in run["stdout"]


def test_results_copied_into_a_results_repo_checkout(run, tmp_path):
    "mteb's folder of the run, copied as embeddings-benchmark/results lays out a model: results/<name>/<revision>/*.json."
    from reasonembed.data import DataError
    from reasonembed.mteb import write_results_repo
    (tmp_path / "results").mkdir()
    dest = write_results_repo(run["summary"]["results_dir"], tmp_path)
    assert dest == tmp_path / "results" / "reasonembed__ri-run-model" / run["summary"]["revision"]
    assert sorted(p.name for p in dest.iterdir()) == sorted([f"{n}.json" for n in TASKS] + ["model_meta.json"])
    meta = json.loads((dest / "model_meta.json").read_text())
    assert (meta["name"].replace("/", "__"), meta["revision"]) == dest.parts[-2:]     # the repository's folder rule
    (dest / "BrightLeetcodeRetrieval.json").write_text("{}")
    with pytest.raises(DataError, match="exists with other content"):
        write_results_repo(run["summary"]["results_dir"], tmp_path)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM (make install-vllm)")
def test_the_wrapper_runs_the_vllm_backend_as_the_hf_one(tmp_path):
    "The same queries and documents of an mteb task through mteb's dataloaders: `backend: vllm` gives `hf`'s embeddings."
    import numpy as np
    from datasets import Dataset
    from mteb import get_task
    from mteb._create_dataloaders import create_dataloader
    from mteb.types import PromptType
    from reasonembed.encoders import load_encoder
    from reasonembed.models import EmbedderConfig
    from reasonembed.mteb import MtebModel
    tiny, task = make_tiny_decoder(tmp_path / "tiny"), get_task("BrightBiologyRetrieval").metadata
    inputs = [(Dataset.from_dict({"id": ["q0", "q1"], "text": ["How do cells make energy?", "Why do giraffes have long necks?"]}), PromptType.query),
              (Dataset.from_dict({"id": ["d0", "d1"], "text": ["Mitochondria make ATP.", PADDED], "title": ["", ""]}), PromptType.document)]
    got = {}
    for backend in ("hf", "vllm"):
        enc = load_encoder(EmbedderConfig(model=str(tiny), backend=backend, device="cpu", dtype="float32"))
        m = MtebModel(enc, max_len=(64, 64))
        got[backend] = [m.encode(create_dataloader(ds, task_metadata=task, prompt_type=pt), task_metadata=task, hf_split="standard",
                                 hf_subset="default", prompt_type=pt) for ds, pt in inputs]
        if backend == "vllm":
            assert m.mteb_model_meta.n_parameters is None and m.mteb_model_meta.embed_dim == 64   # the weights live in the engine
            enc.close()
    for a, b in zip(got["hf"], got["vllm"]):
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() >= 0.9999, cos


@pytest.mark.mteb
def test_mteb_offline_is_one_error_line(tmp_path):
    "Hub unreachable (HF_HUB_OFFLINE, nothing cached): `reasonembed mteb` ends with one HubError line and status 2, no traceback."
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "reasonembed.cli", "mteb", "--model", "minilm", "--tasks", "BrightBiologyRetrieval",
                        "--output-dir", str(tmp_path / "run"), "--set", "embedder.device=cpu", "show_progress=false"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr[-3000:]
    errors = [l for l in p.stderr.splitlines() if l.startswith("reasonembed mteb: error:")]
    assert len(errors) == 1 and "mteb could not load a task's dataset" in errors[0] and "HF_ENDPOINT" in errors[0], p.stderr[-3000:]
