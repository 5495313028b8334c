"""One setting, one home: changing the temperature, a stage's sampling, or a domain's sizes in its one place reaches
the code that uses it (and nothing else has to change)."""
import dataclasses
from unittest import mock

import pytest
import yaml

import reasonembed.loss as loss_mod
from reasonembed.batching import demo_samples, resolve_domain_sizes
from reasonembed.config import from_dict, load_config
from reasonembed.data import Doc, TrainSample, load_jsonl, write_jsonl
from reasonembed.domains import BRIGHT_DOMAINS
from reasonembed.llm import FunctionLLM
from reasonembed.synthesis import RemixerConfig, demo_config, run_remixer
from reasonembed.testing import HashEmbedder
from reasonembed.training import TrainConfig, train


def _tiny_training(tmp_path, **train_cfg):
    "One MiniLM step on 8 samples; returns the temperatures the loss was called with and the run's recorded config."
    write_jsonl(tmp_path / "train.jsonl", demo_samples(8, n_neg=2, seed=3))
    taus = []
    real = loss_mod.ri_info_nce
    def spy(*a, **kw):
        taus.append(kw["temperature"]); return real(*a, **kw)
    base = {"data": [str(tmp_path / "train.jsonl")], "output_dir": str(tmp_path / "run"), "max_steps": 1, "save_model": False,
            "plot": False, "progress": False, "embedder": {"model": "minilm", "query_max_len": 32, "passage_max_len": 48},
            "batching": {"batch_size": 4, "group_size": 2}, "loss": {"mode": "basic"}}
    with mock.patch.object(loss_mod, "ri_info_nce", spy):
        out = train(from_dict(TrainConfig, {**base, **train_cfg}))
    return taus, yaml.safe_load((out / "config.yaml").read_text())


def test_temperature_set_in_the_config_reaches_the_loss(tmp_path):
    taus, recorded = _tiny_training(tmp_path, loss={"mode": "basic", "temperature": 0.07})
    assert taus == [0.07] and recorded["loss"]["temperature"] == 0.07


def test_temperature_default_lives_in_one_table(tmp_path):
    with mock.patch.dict(loss_mod.TEMPERATURE_BY_BACKBONE, {"encoder": 0.11}):
        taus, recorded = _tiny_training(tmp_path)
    assert taus == [0.11] and recorded["loss"]["temperature"] == 0.11      # MiniLM is an encoder


def _scripted_remixer_run(tmp_path, cfg: RemixerConfig):
    "A ReMixer run with a scripted LLM that records the sampling parameters of each stage."
    seen = {}
    def answer(messages, params, j):
        u = messages[-1]["content"]
        stage = "annotate" if "Document" in u else "generate" if "Passage" in u else "reason"
        seen.setdefault(stage, params)
        if stage == "annotate": return "<score>4</score>" if "cells" in u.split("Document")[1] else "<score>1</score>"
        if stage == "generate":
            passage = u.split('"""')[1]
            return f"How do cells divide and grow in a living body over time, in sample {passage.split()[-1]}?"
        return "The expert thinks about mitosis."
    docs = [Doc(f"d{i}", ("cells divide and grow. " if i % 2 else "rocks erode slowly. ") * 20 + str(i)) for i in range(8)]
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    cfg = dataclasses.replace(cfg, corpus=str(tmp_path / "corpus.jsonl"))
    llm = FunctionLLM(answer, show_progress=False)
    run_remixer(cfg, tmp_path / "out", llms=dict.fromkeys(["generator", "annotator", "reasoner"], llm), embedder=HashEmbedder())
    return seen, load_jsonl(tmp_path / "out" / "train.jsonl", TrainSample)


def test_a_stage_sampling_is_one_key(tmp_path):
    cfg = load_config(RemixerConfig, sets=["annotation_sampling.top_k=7", "n_sources=3", "search_k=8", "keep_k=6",
                                          "domain=biology", "strict_parsing=false"])
    seen, rows = _scripted_remixer_run(tmp_path, cfg)
    assert seen["annotate"].top_k == 7 and seen["annotate"].temperature == 0.7     # the paper's others kept
    assert seen["generate"].top_k is None and seen["generate"].top_p == 0.6         # the other stages untouched
    assert rows


def test_a_domain_sizes_live_in_the_registry(tmp_path):
    new = dataclasses.replace(BRIGHT_DOMAINS["biology"], group_size=4, batch_size=32)
    with mock.patch.dict(BRIGHT_DOMAINS, {"biology": new}):
        s = demo_samples(4, n_neg=2, domains=("biology",))
        assert resolve_domain_sizes(s) == {"biology": (4, 32)}                    # training reads the registry
        cfg = load_config(RemixerConfig, sets=["n_sources=3", "search_k=8", "keep_k=6", "domain=biology"])
        _, rows = _scripted_remixer_run(tmp_path, cfg)
    assert rows and all((r.group_size, r.batch_size) == (4, 32) for r in rows)   # ReMixer's rows carry it


def test_the_loss_functions_take_the_temperature_by_name_and_without_default():
    "One name for the temperature down to the loss (keyword-only, no default there): LossConfig is its one home."
    import inspect
    for fn in (loss_mod.info_nce_per_sample, loss_mod.ri_info_nce):
        p = inspect.signature(fn).parameters
        assert "tau" not in p and p["temperature"].kind is inspect.Parameter.KEYWORD_ONLY
        assert p["temperature"].default is inspect.Parameter.empty, fn.__name__
    assert "BACKBONE_DEFAULTS" not in loss_mod.LossConfig.__dataclass_fields__["temperature"].metadata["help"]


def test_needs_reasoning_query_and_the_ri_settings_live_in_the_loss_config():
    """Whether a loss needs q′ is asked of `LossConfig.needs_reasoning_query` (no `mode == "ri"` in the package or the
    notebooks); κ, ε and `ri_start_step` have their defaults in `LossConfig` only: the functions below it take them by
    name without defaults (as the temperature), and the sentence-transformers losses leave them at None (LossConfig's)."""
    import ast, inspect, json, re
    from pathlib import Path
    root = Path(loss_mod.__file__).parent
    ri_test = re.compile(r"""mode\W{0,4}\s*[!=]=\s*['"]ri['"]|['"]ri['"]\s*[!=]=\s*\S*mode\b""")
    sources = {f: f.read_text() for f in sorted(root.glob("*.py"))}
    for nb in sorted((root.parent / "nbs").glob("*.ipynb")):
        sources[nb] = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    found = [f"{f.name}:{s[:m.start()].count(chr(10)) + 1}" for f, s in sources.items() for m in ri_test.finditer(s)]
    assert not found, f"`mode == 'ri'` outside LossConfig (use loss.needs_reasoning_query): {found}"
    assert loss_mod.LossConfig(mode="ri").needs_reasoning_query and not loss_mod.LossConfig(mode="basic").needs_reasoning_query

    settings = {"kappa", "eps", "ri_start_step"}
    with_default = []
    for f in sorted(root.glob("*.py")):
        text = f.read_text()
        names = settings if "LossConfig" in text else settings - {"eps"}     # `eps` is an RI setting where the loss config is
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)): continue
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + list(zip(a.kwonlyargs, a.kw_defaults))
            with_default += [f"{f.name}:{node.lineno} {arg.arg}={ast.unparse(d)}" for arg, d in pairs
                             if arg.arg in names and d is not None and not (isinstance(d, ast.Constant) and d.value is None)]
    assert not with_default, f"RI settings with a default outside LossConfig: {with_default}"
    for fn in (loss_mod.reasoning_intensity, loss_mod.ri_weights, loss_mod.ri_info_nce):
        p = inspect.signature(fn).parameters
        for k in settings & set(p):
            assert p[k].kind is inspect.Parameter.KEYWORD_ONLY and p[k].default is inspect.Parameter.empty, (fn.__name__, k)
    assert {f.name: f.default for f in dataclasses.fields(loss_mod.LossConfig) if f.name in settings} == \
        {"kappa": 5.0, "eps": 1e-6, "ri_start_step": 100}                # the authors' training script


def test_no_module_over_600_lines():
    "Modules of one job: no module of the package over 600 lines (`_modidx.py` is nbdev's generated index)."
    import pathlib
    pkg = pathlib.Path(__file__).resolve().parents[1] / "reasonembed"
    long = {str(f.relative_to(pkg)): n for f in sorted(pkg.rglob("*.py"))
            if f.name != "_modidx.py" and (n := len(f.read_text().splitlines())) > 600}
    assert not long, f"modules over 600 lines (split each at a real seam, into its own notebook): {long}"


def test_q_prime_has_one_home_shared_by_remixer_and_prepare(tmp_path):
    "prepare imports no synthesis; ReMixer's stage 4 and prepare hold one ReasonerConfig, reason with one call, compose q' with one function."
    import ast
    import inspect
    import reasonembed.prepare as prep_mod
    import reasonembed.prompts as prompts_mod
    import reasonembed.remixer as remixer_mod
    tree = ast.parse(inspect.getsource(prep_mod))
    mods = ({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names})
    assert not [m for m in mods if m and m.rsplit(".", 1)[-1] == "synthesis"], mods
    assert prep_mod.reasoning_query is remixer_mod.reasoning_query is prompts_mod.reasoning_query
    assert prep_mod.reason_queries is remixer_mod.reason_queries
    assert prep_mod.PrepareConfig(source="x", task="t").reasoner == RemixerConfig().reasoner     # one config, one set of defaults
    calls = []

    def spy(name):
        def composer(*a, **kw):
            calls.append(name)
            return prompts_mod.reasoning_query(*a, **kw)
        return composer
    (tmp_path / "synth").mkdir()
    remixer_cfg = load_config(RemixerConfig, sets=["n_sources=3", "search_k=8", "keep_k=6", "domain=biology", "strict_parsing=false"])
    prep_cfg = prep_mod.demo_config(tmp_path / "set", 6, reasoning_field=None, n_negatives=0, heldout_fraction=0.25)
    with mock.patch.object(remixer_mod, "reasoning_query", spy("remixer")), mock.patch.object(prep_mod, "reasoning_query", spy("prepare")):
        _, rows = _scripted_remixer_run(tmp_path / "synth", remixer_cfg)
        stats = prep_mod.prepare(prep_cfg, tmp_path / "prep", llm=FunctionLLM(lambda m, p, j: "An expert thinks.", show_progress=False))
    assert rows and all(r.reasoning_query == r.query + "\n\nThe expert thinks about mitosis." for r in rows)
    assert stats["q_prime"]["llm"] == stats["rows"] > 0
    assert (calls.count("remixer"), calls.count("prepare")) == (len(rows), stats["rows"])


def test_benchmark_names_are_spelled_only_in_the_registry():
    """No `"bright"` / `"r2med"` string literal (either quote style, f-strings included) in the package outside
    `benchmarks.py`, the registry (`BENCHMARKS`, `LAYOUTS`): every other module looks a benchmark up by name."""
    import io, tokenize
    from pathlib import Path
    import reasonembed
    from reasonembed.benchmarks import BENCHMARKS, LAYOUTS
    names = {"bright", "r2med"}
    assert names <= set(BENCHMARKS) and names <= set(LAYOUTS)
    found = []
    for f in sorted(Path(reasonembed.__file__).parent.glob("*.py")):
        if f.name in ("benchmarks.py", "_modidx.py"): continue
        for tok in tokenize.generate_tokens(io.StringIO(f.read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.STRING:
                body = tok.string.lstrip("rbfuRBFU")
                q = 3 if body[:3] in ('"""', "'''") else 1
                if body[q:-q] in names: found.append(f"{f.name}:{tok.start[0]}: {tok.string}")
    assert not found, "benchmark names spelled outside reasonembed/benchmarks.py:\n" + "\n".join(found)


def test_run_notebooks_are_thin():
    "A run notebook (papermill target, 20-23) is its parameters, a few library calls and the displays: at most 40 code lines."
    import json
    import pathlib
    nbs = pathlib.Path(__file__).resolve().parents[1] / "nbs"
    lines = {}
    for nb in sorted(nbs.glob("2[0-9]*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        body = [c for c in cells if "parameters" not in c.get("metadata", {}).get("tags", [])]   # the parameters cell is the interface
        lines[nb.stem] = sum(1 for c in body for l in "".join(c["source"]).splitlines() if l.strip() and not l.strip().startswith("#"))
    assert {"21_train", "22_evaluate"} <= set(lines)
    not_yet = {"20_synthesize", "23_report"}       # issue 29: still to be thinned; the list may only shrink
    assert {k for k, n in lines.items() if n > 40} <= not_yet, lines
