"""One setting, one home: `EmbedderConfig.backend` set where each user keeps its EmbedderConfig (evaluation's
`embedder`, ReMixer's `miner`, the intensity command's option) reaches the encoder that is built. The
vLLM encoder is replaced by a recording stand-in, so nothing here needs vLLM (tests/test_vllm_encoder.py runs it)."""
import dataclasses
from unittest import mock

import numpy as np
import torch

import reasonembed.encoders as encoders
from reasonembed.config import load_config
from reasonembed.data import Doc, TrainSample, load_jsonl, write_jsonl
from reasonembed.models import EmbedderConfig
from reasonembed.testing import HashEmbedder, write_bright_fixture


class _StandIn(HashEmbedder):
    "Takes the place of VLLMEncoder: built like it (`config, _explicit, **overrides`), records the config it got."
    made: list = []
    def __init__(self, config=None, _explicit=None, **overrides):
        super().__init__(name="stand-in")
        self.config = dataclasses.replace(config or EmbedderConfig(), **overrides)
        self.is_decoder = False
        _StandIn.made.append(self.config)
    def format_query(self, query, instruction=None): return query
    def embed(self, texts, is_query): return torch.from_numpy(self.encode_corpus(list(texts)))
    def set_max_len(self, query=None, passage=None): return self
    def eval(self): return self
    def train(self, mode=True): return self


def _standin():
    _StandIn.made = []
    return mock.patch.dict(encoders.ENCODERS, {"vllm": _StandIn})


def test_evaluation_backend_is_an_embedder_override(tmp_path):
    from reasonembed.evaluation import EvalConfig, evaluate
    fx = write_bright_fixture(tmp_path / "bright")
    with _standin():
        res = evaluate(EvalConfig(model="minilm", data_dir=str(fx), tasks=["biology"], output_dir=str(tmp_path / "out"),
                                  cache_dir=str(tmp_path / "cache"), show_progress=False,
                                  embedder={"backend": "vllm", "vllm_options": {"max_num_seqs": 8}}))
    assert [(c.model, c.backend, c.vllm_options, c.passage_max_len) for c in _StandIn.made] == [("minilm", "vllm", {"max_num_seqs": 8}, 8192)]
    assert res["tasks"]["biology"]["mean"]["ndcg_cut_10"] > 0
    with _standin():
        from reasonembed.evaluation import load_embedder
        assert type(load_embedder(EvalConfig(model="minilm"))).__name__ == "Embedder" and _StandIn.made == []   # default: hf


def test_miner_backend_reaches_the_miner(tmp_path):
    from reasonembed.llm import FunctionLLM
    from reasonembed.synthesis import RemixerConfig, run_remixer
    def answer(messages, params, j):
        u = messages[-1]["content"]
        if "Document" in u: return "<score>4</score>" if "cells" in u.split("Document")[1] else "<score>1</score>"
        if "Passage" in u:
            passage = u.split('"""')[1]
            return f"How do cells divide and grow in a living body, in sample {passage.split()[-1]}?"
        return "The expert thinks about mitosis."
    docs = [Doc(f"d{i}", ("cells divide and grow. " if i % 2 else "rocks erode slowly. ") * 20 + str(i)) for i in range(8)]
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    cfg = load_config(RemixerConfig, sets=["n_sources=3", "search_k=8", "keep_k=6", "domain=biology", "strict_parsing=false",
                                           "miner.backend=vllm", "miner.query_max_len=64", f"corpus={tmp_path / 'corpus.jsonl'}"])
    llm = FunctionLLM(answer, show_progress=False)
    with _standin():
        run_remixer(cfg, tmp_path / "out", llms=dict.fromkeys(["generator", "annotator", "reasoner"], llm))
    assert [(c.backend, c.query_max_len) for c in _StandIn.made] == [("vllm", 64)]
    assert load_jsonl(tmp_path / "out" / "train.jsonl", TrainSample)


def test_intensity_command_takes_the_backend(tmp_path, capsys):
    from reasonembed.batching import demo_samples
    from reasonembed.intensity import intensity_cli
    write_jsonl(tmp_path / "train.jsonl", demo_samples(8, n_neg=2, seed=3))
    with _standin():
        intensity_cli([str(tmp_path / "train.jsonl")], model="minilm", out=str(tmp_path / "ri.jsonl"), set=["loss.temperature=0.05",
                      "batching.batch_size=4", "batching.group_size=2", "embedder.query_max_len=64", "embedder.passage_max_len=64",
                      "embedder.backend=vllm", "embedder.device=cpu"])
    assert [(c.backend, c.passage_max_len) for c in _StandIn.made] == [("vllm", 64)]
    rows = [r for r in (tmp_path / "ri.jsonl").read_text().splitlines() if r]
    assert len(rows) == 8 and "scores in" in capsys.readouterr().out
