"""Benchmark 2: encoding throughput, `Embedder.encode` vs `SentenceTransformer.encode`, MiniLM on CPU.

~2,000 texts of varied lengths (pydoc passages cut to 5-300 words, truncated at `--max-len` tokens). All models are
loaded in one process and the configurations are interleaved pass by pass (`--repeats` passes each, median):
  st-fp32          SentenceTransformer.encode (the peer)
  ours-fp32        Embedder.encode, float32 (embeddings must equal the peer's: max |diff| and min cosine reported)
  ours-bf16-ac     Embedder(dtype='bfloat16'): bf16 autocast over float32 weights
  ours-bf16        Embedder(dtype='bfloat16', weights_dtype='bfloat16'): bf16 weights, no casts per call
  (+ `--batch-sizes` variants of the fastest)
Also measured in the same process: this CPU's bf16 (and fp32) matrix-multiply throughput at the model's shapes
(token rows x hidden -> hidden / intermediate, as in one layer), and the fraction of it that encoding reaches
(useful FLOPs: real tokens only, linear layers + attention score/value products).
Targets: fastest ours >= 1.5x st-fp32 texts/s; fraction of bf16 matmul throughput >= 60%.

    nice -n 5 .venv/bin/python bench/encode_throughput.py [--n 2000 --repeats 2 --max-len 256]
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, spread, md_table, write_results, check

NAME = "encode_throughput"


def make_texts(n: int, seed: int = 0, min_words: int = 5, max_words: int = 300) -> list[str]:
    "`n` texts of log-uniformly varied lengths cut from the pydoc passages (deterministic)."
    import numpy as np
    from reasonembed.data import pydoc_corpus
    docs = [d.text.split() for d in pydoc_corpus(words=400)]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = docs[int(rng.integers(len(docs)))]
        k = int(np.exp(rng.uniform(np.log(min_words), np.log(max_words))))
        s = int(rng.integers(0, max(1, len(w) - k)))
        out.append(" ".join(w[s:s + k]) or "empty")
    return out


def layer_shapes(cfg) -> tuple[int, int, int, int]:
    return cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads


def useful_flops(lengths, d: int, ff: int, layers: int) -> float:
    "Forward FLOPs on real tokens: linear layers 2*l*(4d^2 + 2*d*ff) + attention 4*l^2*d, per layer."
    return float(sum(layers * (2 * l * (4 * d * d + 2 * d * ff) + 4 * l * l * d) for l in lengths))


def matmul_peak(d: int, ff: int, rows: int, dtype, iters: int = 10) -> float:
    "FLOP/s of F.linear at one layer's shapes (4x d->d, d->ff, ff->d) on `rows` token rows; median of `iters`."
    import torch, torch.nn.functional as F
    x, h = torch.randn(rows, d, dtype=dtype), torch.randn(rows, ff, dtype=dtype)
    wdd, wdf, wfd = torch.randn(d, d, dtype=dtype), torch.randn(ff, d, dtype=dtype), torch.randn(d, ff, dtype=dtype)
    flops = 2 * rows * (4 * d * d + 2 * d * ff)
    def once():
        for _ in range(4): F.linear(x, wdd)
        F.linear(x, wdf); F.linear(h, wfd)
    with torch.inference_mode():
        for _ in range(3): once()
        ts = []
        for _ in range(iters):
            t = time.perf_counter(); once(); ts.append(time.perf_counter() - t)
    return flops / median(ts)


def profile_encode(enc_fn, texts, top: int = 12) -> list[dict]:
    "Top ops by self CPU time over one encode call (torch.profiler)."
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        enc_fn(texts)
    ev = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    tot = sum(e.self_cpu_time_total for e in ev) or 1
    return [dict(op=e.key, self_ms=e.self_cpu_time_total / 1e3, share=e.self_cpu_time_total / tot, calls=e.count) for e in ev[:top]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="texts")
    ap.add_argument("--max-len", type=int, default=256, help="max tokens (ST max_seq_length = Embedder passage_max_len)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batch-sizes", default="64,128", help="extra batch sizes tried with the fastest bf16 setting ('' for none)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per configuration (interleaved)")
    ap.add_argument("--profile-n", type=int, default=256, help="texts in the profiled pass (0: no profile)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine two OpenMP threads thrash when other jobs hold a core; 0: torch default)")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    import numpy as np, torch
    if a.threads: torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer
    from reasonembed.hub import resolve_model
    from reasonembed.models import Embedder
    texts = make_texts(a.n)
    path = str(resolve_model("minilm"))
    st = SentenceTransformer(path, device="cpu"); st.max_seq_length = a.max_len
    kw = dict(model="minilm", device="cpu", passage_max_len=a.max_len, query_max_len=a.max_len)
    ours = {"ours-fp32": Embedder(**kw), "ours-bf16-ac": Embedder(**kw, dtype="bfloat16"),
            "ours-bf16": Embedder(**kw, dtype="bfloat16", weights_dtype="bfloat16")}
    enc = {"st-fp32": lambda t, bs=a.batch_size: st.encode(t, batch_size=bs, normalize_embeddings=True, show_progress_bar=False)}
    for k, e in ours.items(): enc[k] = (lambda e: lambda t, bs=a.batch_size: e.encode_corpus(t, batch_size=bs, show_progress=False))(e)
    # token lengths (for FLOPs) and model shapes
    tok = ours["ours-fp32"].tokenizer
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=a.max_len)["input_ids"]]
    d, ff, layers, heads = layer_shapes(ours["ours-fp32"].model.config)
    flops = useful_flops(lengths, d, ff, layers)
    # warm-up + equality (fp32): the first call of each config also serves as its warm-up
    small = texts[:128]
    outs = {k: f(small) for k, f in enc.items()}
    ref = outs["st-fp32"]
    eq = {}
    for k, v in outs.items():
        cos = np.sum(v * ref, 1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
        eq[k] = dict(max_abs_diff=float(np.abs(v - ref).max()), min_cosine=float(cos.min()))
    names = list(enc)
    times = {k: [] for k in names}
    full = {}
    for r in range(a.repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter(); full[k] = enc[k](texts); times[k].append(time.perf_counter() - t)
            print(f"pass {r + 1} {k}: {times[k][-1]:.1f} s", flush=True)
    for k in names:   # full-set equality too
        v = full[k]; cos = np.sum(v * full["st-fp32"], 1)
        eq[k].update(full_max_abs_diff=float(np.abs(v - full["st-fp32"]).max()), full_min_cosine=float(cos.min()))
    # batch-size variants of the fastest ours
    fastest = min(["ours-bf16-ac", "ours-bf16"], key=lambda k: median(times[k]))
    base_of = {k: k for k in names}
    for bs in [int(x) for x in a.batch_sizes.split(",") if x.strip()]:
        k = f"{fastest} batch {bs}"; names.append(k); times[k] = []; base_of[k] = fastest
        f = enc[fastest]; f(small, bs)
        for r in range(a.repeats):
            t = time.perf_counter(); f(texts, bs); times[k].append(time.perf_counter() - t)
            print(f"pass {r + 1} {k}: {times[k][-1]:.1f} s", flush=True)
    # this CPU's matmul throughput at the model's shapes (rows = one batch of mean length), measured now
    rows_tok = int(a.batch_size * np.mean(lengths))
    peak_bf16 = median([matmul_peak(d, ff, rows_tok, torch.bfloat16) for _ in range(3)])
    peak_fp32 = median([matmul_peak(d, ff, rows_tok, torch.float32) for _ in range(3)])
    st_t = median(times["st-fp32"])
    rows = []
    for k in names:
        t = median(times[k])
        rows.append(dict(config=k, seconds=t, texts_per_s=a.n / t, tokens_per_s=sum(lengths) / t, speed_vs_st=st_t / t,
                         spread=spread(times[k]), gflops=flops / t / 1e9, frac_bf16_peak=flops / t / peak_bf16,
                         frac_fp32_peak=flops / t / peak_fp32,
                         min_cosine_vs_st=eq[base_of[k]]["full_min_cosine"]))
    best = max(rows[1:], key=lambda r: r["texts_per_s"])
    tgt = [dict(target="fastest ours vs st-fp32 (texts/s)", value=best["speed_vs_st"], goal=">= 1.5", met=check(best["speed_vs_st"], 1.5)),
           dict(target=f"{best['config']}: fraction of bf16 matmul FLOP/s", value=best["frac_bf16_peak"], goal=">= 0.60",
                met=check(best["frac_bf16_peak"], 0.60)),
           dict(target="ours-fp32 == st-fp32 (max |diff|)", value=eq["ours-fp32"]["full_max_abs_diff"], goal="<= 1e-4",
                met=check(eq["ours-fp32"]["full_max_abs_diff"], 1e-4, False))]
    prof = []
    if a.profile_n:
        prof = profile_encode(enc[base_of[best["config"]]], texts[:a.profile_n])
    md = (f"Encoding {a.n} texts ({min(lengths)}-{max(lengths)} tokens, mean {np.mean(lengths):.0f}, max length {a.max_len}), "
          f"MiniLM ({layers} layers, d={d}, ff={ff}), batch {a.batch_size}, {a.repeats} interleaved passes per config (median). "
          f"Matmul throughput at the model's shapes ({rows_tok} token rows): bf16 {peak_bf16 / 1e9:.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s.\n\n"
          + md_table(rows, [("config", "config"), ("texts_per_s", "texts/s"), ("tokens_per_s", "tokens/s"), ("speed_vs_st", "speed vs st-fp32"),
                            ("spread", "spread"), ("gflops", "useful GFLOP/s"), ("frac_bf16_peak", "of bf16 matmul"),
                            ("frac_fp32_peak", "of fp32 matmul"), ("min_cosine_vs_st", "min cos vs st")])
          + "\n\n" + md_table(tgt, [("target", "target"), ("value", "measured"), ("goal", "goal"), ("met", "met")])
          + ("\n\nProfile of one pass of " + base_of[best["config"]] + f" over {a.profile_n} texts (self CPU time):\n\n"
             + md_table(prof, [("op", "op"), ("self_ms", "self ms"), ("share", "share"), ("calls", "calls")]) if prof else ""))
    write_results(NAME, {"args": vars(a), "rows": rows, "targets": tgt, "equality": eq, "times": times,
                         "peak_bf16_flops": peak_bf16, "peak_fp32_flops": peak_fp32, "useful_flops": flops,
                         "token_lengths": {"mean": float(np.mean(lengths)), "min": min(lengths), "max": max(lengths), "total": sum(lengths)},
                         "profile": prof}, md, a.out_dir)


if __name__ == "__main__":
    main()
