"""The vLLM encoding backend (`reasonembed.encoders.VLLMEncoder`) against the `Embedder`, end to end (needs vLLM).

One pair of engines (two CPU workers: the data-parallel path) on the tiny random decoder serves most tests; MiniLM
gets one engine of its own. Checked: nDCG@10 on a BRIGHT-layout fixture agrees to 1e-3, the corpus-embedding cache
written by one backend is read by the other, an encode interrupted under one backend resumes under the other from
its finished shards, and mining candidates and reasoning-intensity scores are the same with either backend.
"""
import dataclasses, importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

if importlib.util.find_spec("vllm") is None: pytest.skip("needs vLLM (make install-vllm)", allow_module_level=True)
pytestmark = pytest.mark.vllm

import reasonembed.encoders as encoders
from reasonembed.data import Doc
from reasonembed.encoders import VLLMEncoder, load_encoder
from reasonembed.evaluation import HEADLINE, EvalConfig, evaluate
from reasonembed.models import Embedder, EmbedderConfig
from reasonembed.retrieval import embedding_cache_path, encode_corpus_cached
from reasonembed.testing import SimulatedCrash, make_tiny_decoder, write_bright_fixture

LENS = dict(query_max_len=48, passage_max_len=128)
TEXTS = [f"document {i} about " + " ".join(["cells", "orbits", "markets", "genes", "theorems"][: i % 5 + 1]) * (i % 3 + 1)
         for i in range(30)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_decoder(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="module")
def hf(tiny):
    return Embedder.from_pretrained(str(tiny), device="cpu", dtype="float32", **LENS)


@pytest.fixture(scope="module")
def vl(tiny):
    enc = load_encoder(EmbedderConfig(model=str(tiny), backend="vllm", dtype="float32", encode_devices=["cpu", "cpu"], **LENS))
    yield enc
    enc.close()


def _cos(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_two_engines_share_the_work_and_equal_the_embedder(vl, hf, monkeypatch):
    monkeypatch.setattr(encoders, "REQUEST_TEXTS", 4)            # many small requests: both workers get some
    got = vl.encode_corpus(TEXTS, show_progress=False)
    assert len(vl.engine_info) == 2 and all(w.requests > 0 for w in vl._workers), [w.requests for w in vl._workers]
    cos = _cos(got, hf.encode_corpus(TEXTS, show_progress=False))
    print(f"tiny decoder, 2 engines: min cosine {cos.min():.6f}")
    assert cos.min() >= 0.999


def _eval(embedder, fixture, out: Path, cache: Path, model: str):
    cfg = EvalConfig(model=model, data_dir=str(fixture), output_dir=str(out), cache_dir=str(cache), show_progress=False, **LENS)
    return {t: s["mean"][HEADLINE] for t, s in evaluate(cfg, embedder=embedder)["tasks"].items()}


def test_bright_fixture_ndcg_agrees_tiny_decoder(vl, hf, tiny, tmp_path):
    fx = write_bright_fixture(tmp_path / "bright")
    a = _eval(hf, fx, tmp_path / "hf", tmp_path / "cache-hf", str(tiny))
    b = _eval(vl, fx, tmp_path / "vllm", tmp_path / "cache-vllm", str(tiny))
    print("tiny decoder nDCG@10 hf / vllm:", {t: (round(a[t], 4), round(b[t], 4)) for t in a})
    assert set(a) == set(b) == {"biology", "leetcode", "mytask"}
    assert max(abs(a[t] - b[t]) for t in a) <= 1e-3, (a, b)


def test_bright_fixture_ndcg_agrees_minilm(tmp_path):
    fx = write_bright_fixture(tmp_path / "bright")
    hm = Embedder.from_pretrained("minilm", device="cpu", dtype="float32", **LENS)
    with VLLMEncoder.from_pretrained("minilm", device="cpu", dtype="float32", **LENS) as vm:
        a = _eval(hm, fx, tmp_path / "hf", tmp_path / "cache-hf", "minilm")
        b = _eval(vm, fx, tmp_path / "vllm", tmp_path / "cache-vllm", "minilm")
    print("MiniLM nDCG@10 hf / vllm:", {t: (round(a[t], 4), round(b[t], 4)) for t in a})
    assert max(abs(a[t] - b[t]) for t in a) <= 1e-3, (a, b)
    assert a["biology"] > 0.5                                    # a real retriever, not a degenerate agreement


class _Counting:
    "An encoder seen through the cache: counts corpus encodings; `crash_after` kills the job after that many shards."
    def __init__(self, inner, crash_after=None): self.inner, self.crash_after, self.calls = inner, crash_after, 0
    def __getattr__(self, k): return getattr(self.inner, k)
    def encode_corpus(self, texts, **kw):
        if self.crash_after is not None and self.calls >= self.crash_after: raise SimulatedCrash("killed")
        self.calls += 1
        return self.inner.encode_corpus(texts, **kw)


def test_cache_written_by_one_backend_is_read_by_the_other(vl, hf, tmp_path):
    docs_a = [Doc(f"a{i}", t) for i, t in enumerate(TEXTS[:12])]
    docs_b = [Doc(f"b{i}", t) for i, t in enumerate(TEXTS[12:])]
    assert embedding_cache_path(vl, docs_a, tmp_path) == embedding_cache_path(hf, docs_a, tmp_path)
    h, v = _Counting(hf), _Counting(vl)
    ea = encode_corpus_cached(h, docs_a, tmp_path, show_progress=False)
    assert (encode_corpus_cached(v, docs_a, tmp_path, show_progress=False) == ea).all() and v.calls == 0    # vLLM reads HF's
    eb = encode_corpus_cached(v, docs_b, tmp_path, show_progress=False)
    assert (encode_corpus_cached(h, docs_b, tmp_path, show_progress=False) == eb).all() and h.calls == 1    # HF reads vLLM's
    assert _cos(eb, hf.encode_corpus([d.text for d in docs_b], show_progress=False)).min() >= 0.999


def test_encode_interrupted_under_hf_resumes_under_vllm(vl, hf, tmp_path):
    docs = [Doc(f"r{i}", t) for i, t in enumerate(TEXTS)]
    killed = _Counting(hf, crash_after=2)
    with pytest.raises(SimulatedCrash):
        encode_corpus_cached(killed, docs, tmp_path, shard_size=8, show_progress=False)
    folder = embedding_cache_path(hf, docs, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.npy", "shard-00001.npy"]
    resumed = _Counting(vl)
    emb = encode_corpus_cached(resumed, docs, tmp_path, shard_size=8, show_progress=False)
    assert resumed.calls == 2                                     # shards 2 and 3 only (30 docs in shards of 8)
    assert emb.dtype == np.float16 and emb.shape == (30, 64)
    assert _cos(emb, hf.encode_corpus(TEXTS, show_progress=False)).min() >= 0.999


def test_mining_and_intensity_are_the_same_with_either_backend(vl, hf, tmp_path):
    from reasonembed.data import load_jsonl, write_jsonl
    from reasonembed.domains import get_domain
    from reasonembed.remixer import GenQuery, Mined, mine_candidates
    docs = [Doc(f"d{i}", t) for i, t in enumerate(TEXTS)]
    write_jsonl(tmp_path / "q.jsonl", [GenQuery(f"biology/d{i}", f"d{i}", "biology", TEXTS[i].replace("document", "question"))
                                       for i in range(0, 30, 3)])
    mined = {}
    for name, enc in (("hf", hf), ("vllm", vl)):
        mine_candidates(tmp_path / "q.jsonl", docs, tmp_path / f"mined-{name}.jsonl", get_domain("biology"), enc, search_k=10, keep_k=5)
        mined[name] = {m.id: m.doc_ids for m in load_jsonl(tmp_path / f"mined-{name}.jsonl", Mined)}
    same = sum(mined["hf"][q] == mined["vllm"][q] for q in mined["hf"])
    print(f"mining: {same}/{len(mined['hf'])} queries with identical candidate lists")
    assert same >= len(mined["hf"]) - 1, mined                    # float16 corpus storage may swap one near-tie

    from reasonembed.batching import BatchConfig, demo_samples
    from reasonembed.intensity import score_intensity
    from reasonembed.loss import LossConfig
    samples = demo_samples(12, n_neg=3, domains=("python", "leetcode"), seed=1)
    loss, sizes = LossConfig(temperature=0.05), BatchConfig(batch_size=4, group_size=3)
    a = score_intensity(hf, samples, loss, sizes, show_progress=False)
    b = score_intensity(vl, samples, loss, sizes, show_progress=False)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    np.testing.assert_allclose([r["RI"] for r in b], [r["RI"] for r in a], rtol=1e-3)
