"""Benchmark 6: encoding backends side by side - our vLLM path (`VLLMEncoder`), our HF path (`Embedder`) and
`SentenceTransformer.encode` - on the same decoder and the same documents, plus one BRIGHT-layout task end to end.

For each model (`--models`; default: the tiny random decoder and SmolLM2-135M, both on CPU here):
  * documents: `--n` fresh texts per round with a realistic length spread (log-normal word counts, median ~150 words,
    10-1,500 words, cut at `--max-len` tokens), spans of the pydoc corpus; every round draws NEW texts (vLLM's prefix
    cache would otherwise serve repeats) and all three backends encode that round's texts, interleaved, the order
    alternating between rounds (`--rounds`; medians);
  * equality first: min cosine of vLLM and of sentence-transformers against our HF path (float32);
  * documents/s and tokens/s of each, the ratios vLLM/HF and HF/ST, and the cores each really used (process CPU
    time / wall; the vLLM engine runs in its own worker process, whose CPU time is read from /proc);
  * engine start (vLLM worker) and model load (HF) separately, since a BRIGHT evaluation pays them once;
  * end to end, one BRIGHT-layout task (`--e2e-docs` documents, `--e2e-queries` queries, task 'biology') through
    `reasonembed.evaluation.evaluate` per backend (encode + search + score, engine already running), and the
    nDCG@10 of each backend and of float32 vs float16 corpus storage;
  * `--bf16`: bf16 on this CPU with the first model (vLLM engine in bf16, HF autocast) - min cosine against float32, speed.
Every figure is recorded beside this CPU's flags (avx2 / avx512f / avx512_bf16 / amx_bf16): bf16 is only fast where
the CPU has avx512_bf16 or AMX.

On a GPU machine (no GPU here when this was written) the same script measures the figures that matter:
    .venv/bin/python bench/encode_backends.py --models Qwen/Qwen3-8B --device cuda --dtype bfloat16 --n 3000 --max-len 8192

    nice -n 5 .venv/bin/python bench/encode_backends.py [--models tiny,smollm2 --n 3000,120 --rounds 2 --max-len 512 --bf16]
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, md_table, median, spread, write_results

NAME = "encode_backends"


def make_docs(n: int, seed: int, min_words: int = 10, max_words: int = 1500, median_words: int = 150) -> list[str]:
    "`n` texts, log-normal word counts (median `median_words`), each stitched from random spans of the pydoc corpus."
    import numpy as np
    from reasonembed.data import pydoc_corpus
    pool = [w for d in pydoc_corpus(words=400) for w in d.text.split()]
    rng = np.random.default_rng(1000 + seed)
    out = []
    for _ in range(n):
        k = int(np.clip(np.exp(rng.normal(np.log(median_words), 0.9)), min_words, max_words))
        words = []
        while len(words) < k:
            s = int(rng.integers(0, len(pool) - 40)); words += pool[s:s + int(rng.integers(8, 40))]
        out.append(" ".join(words[:k]))
    return out


def cpu_seconds(pid: int | None = None) -> float:
    "CPU time (user + system, all threads) of this process, or of process `pid` (from /proc)."
    if pid is None: return time.process_time()
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def min_cos(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def model_folder(name: str, root: Path) -> str:
    if name == "tiny":
        from reasonembed.testing import make_tiny_decoder
        return str(make_tiny_decoder(root / "tiny"))
    if name == "small":   # a larger random decoder: 4 layers, hidden 256 (head_dim 32)
        from reasonembed.testing import make_tiny_decoder
        return str(make_tiny_decoder(root / "small", hidden_size=256, num_layers=4))
    return name


def write_bright_task(root: Path, docs: list[str], n_queries: int, seed: int = 0) -> Path:
    "A BRIGHT-layout task 'biology' over `docs`: queries are spans of a document (relevant: that document)."
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    (root / "documents").mkdir(parents=True, exist_ok=True); (root / "examples").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"id": f"d{i}", "content": t} for i, t in enumerate(docs)]),
                   root / "documents" / "biology-00000-of-00001.parquet")
    ex = []
    for j, i in enumerate(rng.choice(len(docs), size=min(n_queries, len(docs)), replace=False)):
        w = docs[i].split(); s = int(rng.integers(0, max(1, len(w) - 20)))
        ex.append(dict(id=f"q{j}", query=" ".join(w[s:s + 20]), reasoning="", gold_ids=[f"d{i}"], gold_ids_long=[],
                       excluded_ids=["N/A"], gold_answer=""))
    pq.write_table(pa.Table.from_pylist(ex), root / "examples" / "biology-00000-of-00001.parquet")
    return root


def bench_model(name: str, n: int, a, root: Path, flags: str) -> dict:
    import numpy as np, torch
    from sentence_transformers import SentenceTransformer
    from reasonembed.encoders import VLLMEncoder
    from reasonembed.evaluation import EvalConfig, evaluate
    from reasonembed.models import Embedder
    folder = model_folder(name, root)
    kw = dict(device=a.device, dtype=a.dtype, query_max_len=min(a.max_len, 512), passage_max_len=a.max_len)
    t0 = time.perf_counter(); hf = Embedder.from_pretrained(folder, **kw); load_s = time.perf_counter() - t0
    st_dir = hf.save(root / f"st-{Path(folder).name}", adapter=False, merged=True, sentence_transformers=True)
    st = SentenceTransformer(str(st_dir), device=a.device if a.device != "auto" else None)
    st.max_seq_length = hf.config.passage_max_len
    vl = VLLMEncoder.from_pretrained(folder, **kw)
    t0 = time.perf_counter(); vl.start(); start_s = time.perf_counter() - t0
    wpid = vl._workers[0].proc.pid if len(vl._workers) == 1 else None
    enc = {"vllm": lambda t: vl.encode_corpus(t, show_progress=False),
           "hf": lambda t: hf.encode_corpus(t, batch_size=a.batch_size, show_progress=False),
           "st": lambda t: st.encode(t, batch_size=a.batch_size, normalize_embeddings=True, show_progress_bar=False)}
    # equality and warm-up (texts not used later)
    warm = make_docs(64, seed=999)
    outs = {k: f(warm) for k, f in enc.items()}
    eq = {"vllm_vs_hf_min_cos": min_cos(outs["vllm"], outs["hf"]), "st_vs_hf_min_cos": min_cos(outs["st"], outs["hf"])}
    print(f"[{name}] equality: {eq}; vLLM start {start_s:.1f} s, HF load {load_s:.1f} s", flush=True)
    times = {k: [] for k in enc}; cores = {k: [] for k in enc}; tokens = []
    for r in range(a.rounds):
        docs = make_docs(n, seed=r)
        tokens.append(sum(len(x) for x in hf.token_ids(docs, False)))
        for k in (list(enc) if r % 2 == 0 else list(enc)[::-1]):
            c0, w0, t0 = cpu_seconds(), (cpu_seconds(wpid) if wpid and k == "vllm" else 0.0), time.perf_counter()
            enc[k](docs)
            dt = time.perf_counter() - t0
            used = cpu_seconds() - c0 + ((cpu_seconds(wpid) - w0) if wpid and k == "vllm" else 0.0)
            times[k].append(dt); cores[k].append(used / dt)
            print(f"[{name}] round {r + 1} {k}: {n / dt:.1f} docs/s ({dt:.1f} s, {used / dt:.2f} cores)", flush=True)
    rows = []
    for k in enc:
        dps = n / median(times[k])
        rows.append({"model": name, "backend": {"vllm": "ours, vLLM (VLLMEncoder)", "hf": "ours, HF (Embedder)",
                                                 "st": "SentenceTransformer.encode"}[k],
                     "docs_s": dps, "tokens_s": median(tokens) / median(times[k]), "spread": spread([n / t for t in times[k]]),
                     "cores": median(cores[k]), "cpu_flags": flags})
    res = {"model": name, "folder": folder, "n_docs": n, "tokens_per_round": tokens, "avg_tokens_per_doc": median(tokens) / n,
           "times_s": times, "cores": cores, "equality": eq, "vllm_start_s": start_s, "hf_load_s": load_s,
           "ratio_vllm_hf": median(times["hf"]) / median(times["vllm"]), "ratio_hf_st": median(times["st"]) / median(times["hf"]),
           "ratio_vllm_st": median(times["st"]) / median(times["vllm"]), "rows": rows}
    # one BRIGHT-layout task end to end, per backend (engine running), and float16 vs float32 storage
    if a.e2e_docs:
        first = name == a.models.split(",")[0].strip()
        e2e_docs = make_docs(a.e2e_docs if first else min(a.e2e_docs, n), seed=500)
        bright = write_bright_task(root / f"bright-{name}", e2e_docs, a.e2e_queries)
        e2e = {}
        for k, emb, dtype in (("hf", hf, "float16"), ("vllm", vl, "float16"), ("hf", hf, "float32")):   # each backend sees these texts once
            cfg = EvalConfig(model=folder, data_dir=str(bright), tasks=["biology"], query_max_len=kw["query_max_len"],
                             passage_max_len=a.max_len, batch_size=a.batch_size, corpus_dtype=dtype, show_progress=False,
                             cache_dir=tempfile.mkdtemp(dir=root), output_dir=tempfile.mkdtemp(dir=root), top_k=1000)
            t0 = time.perf_counter(); out = evaluate(cfg, embedder=emb); dt = time.perf_counter() - t0
            e2e[f"{k}-{dtype}"] = {"seconds": dt, "ndcg10": out["tasks"]["biology"]["mean"]["ndcg_cut_10"]}
            print(f"[{name}] e2e {k} {dtype}: {dt:.1f} s, nDCG@10 {e2e[f'{k}-{dtype}']['ndcg10']:.4f}", flush=True)
        res["e2e"] = e2e
    if a.bf16 and name == a.models.split(",")[0].strip():     # the first model only (bf16 is emulated on CPUs without avx512_bf16)
        ref = outs["hf"]
        with VLLMEncoder.from_pretrained(folder, **{**kw, "dtype": "bfloat16"}) as vb:
            vb.start()
            hb = Embedder.from_pretrained(folder, **{**kw, "dtype": "bfloat16"})
            docs = make_docs(min(n, 200), seed=77)
            t0 = time.perf_counter(); vb.encode_corpus(docs, show_progress=False); tv = time.perf_counter() - t0
            t0 = time.perf_counter(); hb.encode_corpus(docs, batch_size=a.batch_size, show_progress=False); th = time.perf_counter() - t0
            t0 = time.perf_counter(); hf.encode_corpus(docs, batch_size=a.batch_size, show_progress=False); tf = time.perf_counter() - t0
            res["bf16"] = {"vllm_bf16_vs_hf_fp32_min_cos": min_cos(vb.encode_corpus(warm, show_progress=False), ref),
                           "hf_bf16_vs_hf_fp32_min_cos": min_cos(hb.encode_corpus(warm, show_progress=False), ref),
                           "docs_s": {"vllm_bf16": len(docs) / tv, "hf_bf16": len(docs) / th, "hf_fp32": len(docs) / tf},
                           "cpu_flags": flags}
        print(f"[{name}] bf16: {res['bf16']}", flush=True)
    vl.close()
    del hf, st
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,smollm2", help="comma-separated: tiny, small, a short name, folder or hub id")
    ap.add_argument("--n", default="3000,120", help="documents per round, one per model (the last repeats); the end-to-end task of "
                                                  "a model other than the first has at most this many documents too")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of fresh documents (interleaved backends; medians)")
    ap.add_argument("--max-len", type=int, default=512, help="passage max tokens (BRIGHT: 8192)")
    ap.add_argument("--batch-size", type=int, default=32, help="HF and sentence-transformers batch size (vLLM schedules by tokens)")
    ap.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    ap.add_argument("--dtype", default="float32", help="compute dtype of all backends")
    ap.add_argument("--e2e-docs", type=int, default=2000, help="documents of the end-to-end BRIGHT-layout task (0: skip)")
    ap.add_argument("--e2e-queries", type=int, default=100)
    ap.add_argument("--bf16", action="store_true", help="also measure bf16 (precision against float32, and speed) with the first model")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process (the vLLM CPU worker binds its own)")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    info = machine_info()
    flags = ",".join(info.get("cpu_flags", [])) or "none of avx2/avx512f/avx512_bf16/amx"
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    ns = [int(x) for x in a.n.split(",")]
    results, root = [], Path(tempfile.mkdtemp(prefix="re-bench-enc-"))
    for i, m in enumerate(models):
        results.append(bench_model(m, ns[min(i, len(ns) - 1)], a, root, flags))
    rows = [r for res in results for r in res["rows"]]
    summary = [{"model": r["model"], "avg_tok": r["avg_tokens_per_doc"], "vllm_hf": r["ratio_vllm_hf"], "hf_st": r["ratio_hf_st"],
                "vllm_st": r["ratio_vllm_st"], "eq_v": f"{r['equality']['vllm_vs_hf_min_cos']:.6f}",
                "eq_st": f"{r['equality']['st_vs_hf_min_cos']:.6f}",
                "start": r["vllm_start_s"], "load": r["hf_load_s"], "cpu_flags": flags} for r in results]
    md = ["## Ratios (same documents, same run)\n",
          md_table(summary, [("model", "model"), ("avg_tok", "tokens/doc"), ("vllm_hf", "vLLM / HF docs/s"), ("hf_st", "HF / ST"),
                             ("vllm_st", "vLLM / ST"), ("eq_v", "min cos vLLM vs HF"), ("eq_st", "min cos ST vs HF"),
                             ("start", "vLLM engine start s"), ("load", "HF load s"), ("cpu_flags", "CPU flags")]),
          "\n\n## Throughput\n",
          md_table(rows, [("model", "model"), ("backend", "backend"), ("docs_s", "docs/s"), ("tokens_s", "tokens/s"),
                          ("spread", "spread"), ("cores", "cores used"), ("cpu_flags", "CPU flags")])]
    e2e_rows = [{"model": r["model"], "run": k, "seconds": v["seconds"], "ndcg10": f"{v['ndcg10']:.4f}", "cpu_flags": flags}
                for r in results for k, v in r.get("e2e", {}).items()]
    if e2e_rows:
        md += ["\n\n## One BRIGHT-layout task end to end (encode + search + score; engine/model already loaded)\n",
               md_table(e2e_rows, [("model", "model"), ("run", "backend-corpus dtype"), ("seconds", "seconds"), ("ndcg10", "nDCG@10"),
                                   ("cpu_flags", "CPU flags")])]
    bf = [{"model": r["model"], **{k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r["bf16"].items() if k != "docs_s"},
           **r["bf16"]["docs_s"]} for r in results if "bf16" in r]
    if bf:
        md += ["\n\n## bf16 on this CPU\n", md_table(bf, [("model", "model"), ("vllm_bf16_vs_hf_fp32_min_cos", "min cos vLLM bf16 vs fp32"),
                                                          ("hf_bf16_vs_hf_fp32_min_cos", "min cos HF bf16 vs fp32"),
                                                          ("vllm_bf16", "vLLM bf16 docs/s"), ("hf_bf16", "HF bf16 docs/s"),
                                                          ("hf_fp32", "HF fp32 docs/s"), ("cpu_flags", "CPU flags")])]
    md.append("\n\nTarget: vLLM path >= 2x our HF path (docs/s). " + "; ".join(
        f"{r['model']}: {r['ratio_vllm_hf']:.2f}x ({'met' if r['ratio_vllm_hf'] >= 2 else 'not met'})" for r in results)
        + f". Device: {a.device}, dtype {a.dtype}, max {a.max_len} tokens.")
    write_results(NAME, {"args": vars(a), "machine": info, "results": results}, "\n".join(md), a.out_dir)


if __name__ == "__main__":
    main()
