"""Benchmark 5: evaluation wall time by phase - encode corpus, encode queries, FAISS search, run building, pytrec_eval.

A synthetic corpus of `--n-docs` pydoc-derived passages of varied length (unique ids) and `--n-queries` queries (a
sentence taken from passage i, relevant: passage i), MiniLM via `Embedder`, the library's own `search_embeddings` and
`evaluate_run`, top-k 1000 as in BRIGHT. The corpus the issue names (50k documents) takes far longer than a few
minutes to encode on this 2-core CPU, so by default:
  * every phase is MEASURED at `--n-docs`;
  * search, run building and scoring are also MEASURED at `--full-n` (50k) documents, over embeddings made by tiling the
    encoded ones plus noise (the same shapes and dtype; the search cost does not depend on the values);
  * corpus encoding at `--full-n` is EXTRAPOLATED linearly from the measured docs/s (labelled as such).
Pass `--n-docs 50000` for a fully measured run (hours on 2 cores).

    nice -n 5 .venv/bin/python bench/eval_phases.py [--n-docs 4000 --n-queries 100 --dtype float32]
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_results

NAME = "eval_phases"


def make_corpus(n: int, nq: int, seed: int = 0):
    import numpy as np
    from reasonembed.data import Doc, Query, pydoc_corpus
    base = [d.text.split() for d in pydoc_corpus(words=300)]
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        w = base[i % len(base)]
        k = int(np.exp(rng.uniform(np.log(30), np.log(250))))
        s = int(rng.integers(0, max(1, len(w) - k)))
        docs.append(Doc(f"d{i}", " ".join(w[s:s + k]) or "empty"))
    qi = rng.choice(n, size=min(nq, n), replace=False)
    queries, qrels = [], {}
    for j, i in enumerate(qi):
        w = docs[i].text.split()
        s = int(rng.integers(0, max(1, len(w) - 12)))
        queries.append(Query(f"q{j}", " ".join(w[s:s + 12]), instruction="Given a Python question, retrieve relevant passages."))
        qrels[f"q{j}"] = {docs[i].id: 1}
    return docs, queries, qrels


def build_run(docs, queries, scores, idx, top_k):
    return {q.id: {docs[i].id: float(s) for i, s in zip(ix[:top_k], sc[:top_k])} for q, sc, ix in zip(queries, scores, idx)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=4000, help="documents encoded (measured)")
    ap.add_argument("--full-n", type=int, default=50000, help="corpus size for the search/score measurement and the encode extrapolation")
    ap.add_argument("--n-queries", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=1000)
    ap.add_argument("--max-len", type=int, default=512, help="passage max tokens (the Embedder default)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="Embedder dtype (bfloat16: bf16 weights + compute)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine two OpenMP threads thrash when other jobs hold a core; 0: torch default)")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    import numpy as np, torch
    if a.threads: torch.set_num_threads(a.threads)
    from reasonembed.models import Embedder
    from reasonembed.retrieval import search_embeddings
    from reasonembed.evaluation import evaluate_run
    t = time.perf_counter()
    docs, queries, qrels = make_corpus(a.n_docs, a.n_queries)
    t_data = time.perf_counter() - t
    kw = dict(dtype="bfloat16", weights_dtype="bfloat16") if a.dtype == "bfloat16" else {}
    t = time.perf_counter()
    emb = Embedder(model="minilm", device="cpu", passage_max_len=a.max_len, **kw)
    t_load = time.perf_counter() - t
    emb.encode_corpus([d.text for d in docs[:64]], batch_size=a.batch_size, show_progress=False)   # warm-up
    phases = []
    def timed(name, fn, n_docs, note="measured"):
        t = time.perf_counter(); out = fn(); dt = time.perf_counter() - t
        phases.append(dict(phase=name, docs=n_docs, seconds=dt, note=note)); print(f"{name} @ {n_docs}: {dt:.2f} s", flush=True)
        return out
    d_emb = timed("encode corpus", lambda: emb.encode_corpus([d.text for d in docs], batch_size=a.batch_size, show_progress=False), a.n_docs)
    insts = queries[0].instruction
    q_emb = timed("encode queries", lambda: emb.encode_queries([q.text for q in queries], instruction=insts, batch_size=a.batch_size,
                                                               show_progress=False), a.n_docs)
    sc, ix = timed("search (FAISS flat IP)", lambda: search_embeddings(q_emb, d_emb, a.top_k), a.n_docs)
    run = timed("build run", lambda: build_run(docs, queries, sc, ix, a.top_k), a.n_docs)
    ev = timed("score (pytrec_eval)", lambda: evaluate_run(run, qrels), a.n_docs)
    ndcg = ev["mean"].get("ndcg_cut_10")
    enc_rate = a.n_docs / phases[0]["seconds"]
    full = []
    if a.full_n > a.n_docs:
        rng = np.random.default_rng(1)
        reps = -(-a.full_n // a.n_docs)
        big = np.tile(d_emb, (reps, 1))[:a.full_n] + rng.normal(0, 0.02, (a.full_n, d_emb.shape[1])).astype(np.float32)
        big /= np.linalg.norm(big, axis=1, keepdims=True)
        big_docs = docs + [type(docs[0])(f"x{i}", "") for i in range(a.full_n - a.n_docs)]
        full.append(dict(phase="encode corpus", docs=a.full_n, seconds=a.full_n / enc_rate, note=f"EXTRAPOLATED from {enc_rate:.1f} docs/s"))
        full.append(dict(phase="encode queries", docs=a.full_n, seconds=phases[1]["seconds"], note="measured (independent of corpus size)"))
        t = time.perf_counter(); sc2, ix2 = search_embeddings(q_emb, big, a.top_k); full.append(dict(phase="search (FAISS flat IP)", docs=a.full_n, seconds=time.perf_counter() - t, note="measured on tiled embeddings"))
        t = time.perf_counter(); run2 = build_run(big_docs, queries, sc2, ix2, a.top_k); full.append(dict(phase="build run", docs=a.full_n, seconds=time.perf_counter() - t, note="measured"))
        t = time.perf_counter(); evaluate_run(run2, qrels); full.append(dict(phase="score (pytrec_eval)", docs=a.full_n, seconds=time.perf_counter() - t, note="measured"))
    for tab in (phases, full):
        tot = sum(r["seconds"] for r in tab)
        for r in tab: r["share"] = r["seconds"] / tot if tot else 0.0
        if tab: tab.append(dict(phase="total", docs=tab[0]["docs"], seconds=tot, share=1.0, note=""))
    cols = [("phase", "phase"), ("docs", "corpus docs"), ("seconds", "seconds"), ("share", "share"), ("note", "")]
    lens = [len(d.text.split()) for d in docs]
    md = (f"Evaluation phases: MiniLM {a.dtype}, batch {a.batch_size}, passage max length {a.max_len}; {a.n_docs} synthetic pydoc "
          f"documents ({min(lens)}-{max(lens)} words, mean {np.mean(lens):.0f}), {len(queries)} queries, top-k {a.top_k}; "
          f"model load {t_load:.1f} s and corpus build {t_data:.1f} s not included. nDCG@10 on this toy task: {ndcg:.3f}.\n\n"
          f"Measured at {a.n_docs} documents:\n\n" + md_table(phases, cols)
          + (f"\n\nAt {a.full_n} documents (encode EXTRAPOLATED, the rest measured):\n\n" + md_table(full, cols) if full else ""))
    write_results(NAME, {"args": vars(a), "phases": phases, "full": full, "encode_docs_per_s": enc_rate, "ndcg_cut_10": ndcg,
                         "model_load_s": t_load}, md, a.out_dir)


if __name__ == "__main__":
    main()
