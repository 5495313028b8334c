"""Model cards and `reasonembed push` on a real (tiny) run: labelled rows prepared from the demo set, MiniLM trained a
few RI-InfoNCE steps, the base and the trained model scored on the held-out queries and compared as the evaluate stage
does; the report's refresh writes the card, whose tables must equal `results.json`. `push` sends the folder to `LocalHub`
through huggingface_hub's own upload client, and sentence-transformers loads it back through `HF_ENDPOINT`."""
import json, os, re, subprocess, sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastcore import test as fc        # fc.test_eq: a name pytest does not collect

from reasonembed.cards import SAVED_CONFIG, push, push_cli, refresh_cards
from reasonembed.config import from_dict
from reasonembed.evaluation import HEADLINE, EvalConfig, evaluate, local_benchmark, per_query_scores
from reasonembed.hub import HubError, LocalHub
from reasonembed.prepare import demo_config, prepare
from reasonembed.statistics import compare_models
from reasonembed.training import train

pytestmark = pytest.mark.slow       # the run fixture: about 4 minutes on a shared 2-core CPU
QUERY = "How do I read a file line by line?"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "prepare → train (RI) → evaluate base and RI on the held-out task → evaluation.json → the report's card refresh."
    root = tmp_path_factory.mktemp("run")
    prepare(demo_config(root / "set", n_queries=24), root / "prepare")
    out = train({"data": [str(root / "prepare" / "train.jsonl")], "output_dir": str(root / "train"),
                 "embedder": {"model": "minilm", "query_max_len": 64, "passage_max_len": 128, "device": "cpu"},
                 "loss": {"mode": "ri", "ri_start_step": 1}, "batching": {"batch_size": 4, "group_size": 2},
                 "max_steps": 3, "lr": 1e-4, "plot": False, "progress": False})
    model, stage = out / "model", root / "evaluate"
    models = {"base": "minilm", "RI": str(model)}
    results = {label: evaluate(from_dict(EvalConfig, {**local_benchmark(root / "prepare" / "heldout"), "model": m, "show_progress": False,
                                                      "query_max_len": 64, "passage_max_len": 128,
                                                      "output_dir": str(stage / "results" / "held-out" / label)}))
               for label, m in models.items()}
    cmp = compare_models({label: per_query_scores(r) for label, r in results.items()}, "base")
    (stage / "evaluation.json").write_text(json.dumps(
        {"models": models, "significance": {"held-out": cmp}, "result_dirs": {f"held-out/{l}": r["output_dir"] for l, r in results.items()}},
        default=float))
    cards = refresh_cards(stage)
    return {"root": root, "model": model, "results": results, "cmp": cmp, "cards": cards}


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    "The rows of the first markdown table after `heading`, by first cell."
    block = text.split(heading, 1)[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
    return {r[0]: r[1:] for r in rows}


def _expected_rows(run) -> dict[str, list[str]]:
    "The card's table from results.json and the paired test: nDCG@10 x 100, the bootstrap interval, the difference from the base, p."
    ri, vs = run["results"]["RI"], run["cmp"]["vs_baseline"]["RI"]
    p = lambda x: "<0.001" if x < 0.001 else f"{x:.3f}"
    row = lambda mean, iv, t: [f"{100 * mean:.2f}", f"{100 * iv['low']:.2f}–{100 * iv['high']:.2f}", f"{100 * t['diff']:+.2f}", p(t["p"])]
    rows = {task: row(s["mean"][HEADLINE], ri["intervals"]["tasks"][task], vs["tasks"][task]) for task, s in ri["tasks"].items()}
    return rows | {"**Avg**": row(ri["average"][HEADLINE], ri["intervals"]["average"], vs["average"])}


def test_card_of_an_evaluated_run(run):
    "The trained model's card names base, pooling, prompt, loss and data, and its tables equal results.json and the paired test."
    from huggingface_hub import ModelCard
    model, ri = run["model"], run["results"]["RI"]
    fc.test_eq(run["cards"], {"RI": model / "README.md"})                 # the base (a short name) is not ours to card
    card = ModelCard.load(model / "README.md")
    fc.test_eq((card.data.base_model, card.data.license), ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"))
    # model-index: every task at full precision, as results.json has it
    fc.test_eq({r.dataset_config: r.metric_value for r in card.data.eval_results}, {t: s["mean"][HEADLINE] for t, s in ri["tasks"].items()})
    fc.test_eq(_table_rows(card.text, "## Evaluation: held-out"), _expected_rows(run))
    # reasonembed.json names the loss with its settings (the temperature as resolved for an encoder)
    saved = json.loads((model / SAVED_CONFIG).read_text())
    fc.test_eq(saved["training"]["loss"], {"name": "RI-InfoNCE", "mode": "ri", "temperature": 0.05, "kappa": 5.0, "ri_start_step": 1,
                                        "eps": 1e-6, "citation": "arXiv 2510.08252"})
    rows_file = [json.loads(l) for l in (run["root"] / "prepare" / "train.jsonl").read_text().splitlines()]
    data = saved["training"]["data"]
    fc.test_eq(data["rows_per_domain"], dict(Counter(r["domain"] for r in rows_file)))
    fc.test_eq((data["source"], data["with_reasoning_query"]), ({"prepare": len(rows_file)}, sum(bool(r.get("reasoning_query")) for r in rows_file)))
    for bit in ("**Loss: RI-InfoNCE**", "| warm-up steps (plain mean before RI weighting) | 1 |", "| temperature τ | 0.05 |",
                "| pooling | mean (L2-normalised) |", f"source: prepare {len(rows_file)}", "eprint = {2510.08252}",
                "licence `apache-2.0`", "### sentence-transformers", "### transformers", "### mteb", "### reasonembed"):
        assert bit in card.text, bit
    prompt = json.loads((model / "config_sentence_transformers.json").read_text())["prompts"]["query"]
    assert prompt.startswith("Instruct: ") and f"```text\n{prompt}\n```" in card.text


def test_push_to_localhub_and_back(run, tmp_path, monkeypatch, capsys):
    "push_cli uploads the folder with huggingface_hub; sentence-transformers loads the repo through HF_ENDPOINT; the hub's card has the table."
    model = run["model"]
    with LocalHub({}, upload_dir=tmp_path / "hub") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint); monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        push_cli(str(model), "lab/ri-minilm", private=True)
        assert f"commit {hub.commits['lab/ri-minilm']}" in capsys.readouterr().out
        assert hub.private == {"lab/ri-minilm"}
        assert any(r.startswith("POST /api/models/lab/ri-minilm/commit/main") for r in hub.requests), hub.requests
        served = hub.repos["lab/ri-minilm"]
        assert (served / "merged" / "model.safetensors").read_bytes() == (model / "merged" / "model.safetensors").read_bytes()
        first, n = hub.commits["lab/ri-minilm"], len(hub.requests)
        fc.test_eq(push(model, "lab/ri-minilm"), first)                    # an existing repo, nothing changed: no second commit
        assert not any("/commit/" in x for x in hub.requests[n:]), hub.requests[n:]
        push_cli(str(model), "lab/ri-minilm", revision="v1")            # --revision: the branch is created from main
        assert any(x.startswith("POST /api/models/lab/ri-minilm/branch/v1") for x in hub.requests)
        assert f"commit {hub.commits['lab/ri-minilm@v1']}" in capsys.readouterr().out
        assert (hub.repos["lab/ri-minilm@v1"] / "README.md").read_text() == (served / "README.md").read_text()
        load = ("import json, sys\nfrom huggingface_hub import hf_hub_download, ModelCard\n"
                "from sentence_transformers import SentenceTransformer\n"
                "m = SentenceTransformer(sys.argv[1], device='cpu')\n"
                "card = ModelCard.load(hf_hub_download(sys.argv[1], 'README.md'))\n"
                "print(json.dumps({'q': m.encode([sys.argv[2]], prompt_name='query', normalize_embeddings=True)[0].tolist(),\n"
                "                  'index': {r.dataset_config: r.metric_value for r in card.data.eval_results}, 'text': card.text}))")
        r = subprocess.run([sys.executable, "-c", load, "lab/ri-minilm", QUERY], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert any(x.startswith("GET /lab/ri-minilm/resolve/main/merged/model.safetensors") for x in hub.requests)
    from reasonembed.models import Embedder
    saved = json.loads((model / SAVED_CONFIG).read_text())
    ours = Embedder.from_pretrained(str(model), device="cpu", dtype="float32").encode_queries(
        [QUERY], instruction=saved["instruction"], show_progress=False)[0]
    assert float(np.dot(np.asarray(ours), np.asarray(got["q"]))) > 0.9999
    ri = run["results"]["RI"]
    assert got["index"] == {t: s["mean"][HEADLINE] for t, s in ri["tasks"].items()}      # the pushed card's table is results.json's
    fc.test_eq(_table_rows(got["text"], "## Evaluation: held-out"), _expected_rows(run))   # and its markdown table
    assert 'SentenceTransformer("lab/ri-minilm")' in got["text"]                          # usage names the repo


def test_push_refuses_what_it_cannot_publish(run, tmp_path):
    "A folder without reasonembed.json, or a repo id that is not org/name, stops before any request, naming what is wrong."
    with pytest.raises(HubError, match="not a model folder written by reasonembed"): push(tmp_path, "lab/x")
    with pytest.raises(HubError, match="expected org/name"): push(run["model"], "no-namespace")
    with LocalHub({}) as ro, pytest.MonkeyPatch.context() as mp:    # a hub that takes no uploads: one line with the hub's answer
        mp.setenv("HF_ENDPOINT", ro.endpoint); mp.setenv("HF_HOME", str(tmp_path / "home")); mp.setenv("HF_HUB_OFFLINE", "0")
        with pytest.raises(HubError, match=re.escape(f"-> lab/x on {ro.endpoint}: 403")): push(run["model"], "lab/x")
