"""vLLM encoding backend on GPUs (run by hand on a CUDA machine with the `gpu` extra; about 5-10 minutes on one H100/H200):

  1. equivalence in bf16: `VLLMEncoder` against the `Embedder` (both bf16) and against the `Embedder` in float32, on
     300 documents of 10-6,000 words cut at 8,192 tokens (BRIGHT's length; long inputs take vLLM's chunked prefill),
     and on queries with an instruction; prints the min / mean cosine (the bf16 tolerance to state in the README);
  2. data parallel: with more than one visible GPU, one engine per GPU gives the single-engine vectors;
  3. throughput: bench/encode_backends.py on the same model (vLLM vs HF vs sentence-transformers, bf16, 8,192 tokens).

usage: python tests/gpu/vllm_encoder_check.py [MODEL]   (default: a random Qwen3 with Qwen3-0.6B shapes, built offline
       by tests/gpu/make_random_qwen3.py; give Qwen/Qwen3-8B or a released model for the real figures)
"""
import subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def cos(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


if __name__ == "__main__":
    assert torch.cuda.is_available(), "needs a GPU"
    from encode_backends import make_docs
    from reasonembed.encoders import VLLMEncoder
    from reasonembed.models import Embedder
    tmp = Path(tempfile.mkdtemp())
    model = sys.argv[1] if len(sys.argv) > 1 else str(tmp / "qwen3-random")
    if len(sys.argv) == 1:
        subprocess.run([sys.executable, str(ROOT / "tests/gpu/make_random_qwen3.py"), model], check=True)
    print(torch.__version__, torch.cuda.get_device_name(0), "GPUs:", torch.cuda.device_count(), flush=True)
    docs = make_docs(300, seed=3, max_words=6000, median_words=600)
    qs = [d[:300] for d in docs[:50]]
    kw = dict(query_max_len=512, passage_max_len=8192, device="cuda")
    hb = Embedder.from_pretrained(model, dtype="bfloat16", **kw)
    ref_b, qref_b = hb.encode_corpus(docs, batch_size=8, show_progress=False), hb.encode_queries(qs, "Given a post, retrieve passages", show_progress=False)
    del hb; torch.cuda.empty_cache()
    hf = Embedder.from_pretrained(model, dtype="float32", **kw)
    ref_f = hf.encode_corpus(docs, batch_size=4, show_progress=False)
    del hf; torch.cuda.empty_cache()
    with VLLMEncoder.from_pretrained(model, dtype="bfloat16", encode_devices=["cuda:0"], **kw) as vl:
        t0 = time.time(); got = vl.encode_corpus(docs, show_progress=False); print(f"vLLM 1 GPU: {len(docs) / (time.time() - t0):.1f} docs/s (incl. start)")
        qgot = vl.encode_queries(qs, "Given a post, retrieve passages", show_progress=False)
    for name, a, b in [("vLLM bf16 vs HF bf16, passages", got, ref_b), ("vLLM bf16 vs HF bf16, queries", qgot, qref_b),
                       ("vLLM bf16 vs HF fp32, passages", got, ref_f), ("HF bf16 vs HF fp32, passages", ref_b, ref_f)]:
        c = cos(a, b); print(f"{name}: min cosine {c.min():.6f}, mean {c.mean():.6f}", flush=True)
    assert cos(got, ref_b).min() > 0.99 and cos(qgot, qref_b).min() > 0.99
    if torch.cuda.device_count() > 1:
        with VLLMEncoder.from_pretrained(model, dtype="bfloat16", **kw) as dp:
            t0 = time.time(); g2 = dp.encode_corpus(docs, show_progress=False)
            print(f"data parallel over {len(dp.slots)} GPUs: {len(docs) / (time.time() - t0):.1f} docs/s (incl. start); "
                  f"min cosine vs 1 GPU {cos(g2, got).min():.6f}")
            assert cos(g2, got).min() > 0.999
    subprocess.run([sys.executable, str(ROOT / "bench/encode_backends.py"), "--models", model, "--n", "2000", "--rounds", "1",
                    "--device", "cuda", "--dtype", "bfloat16", "--max-len", "8192", "--batch-size", "8", "--e2e-docs", "5000",
                    "--threads", "0"], check=True, cwd=ROOT)
