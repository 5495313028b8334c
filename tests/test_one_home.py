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
