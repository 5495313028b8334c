"""Benchmark 7: token-budget encoding (`EmbedderConfig.max_batch_tokens`) vs fixed-size batches (`batch_size` texts).

The corpus is synthetic, with a long-tailed length spread like BRIGHT's documents (a few tokens to thousands; BRIGHT's
run past 8,192 tokens): word counts drawn from a log-normal (median `--median-words` 150, sigma `--sigma` 1.2, 3 to
4,000 words) of random common English words, seeded, then cut at MiniLM's 512 tokens, so most texts are short and a
long tail hits the cut. Same texts, same order for every configuration.

Each (configuration, round) runs in a fresh subprocess (`bench/_common.py`): load MiniLM (fp32, CPU), encode a small
warm-up set, reset the kernel's peak-RSS counter (VmHWM via /proc/self/clear_refs), then time
`Embedder.encode_corpus` over the corpus. Memory is RSS, not tracemalloc (torch's CPU allocations bypass Python's
allocator): "peak" is the peak RSS above the RSS before the measured encode. Tokens/s counts real (unpadded) tokens;
the budget run's time includes its extra pass that measures tokenized lengths. The peer is fixed-size batches of
`--batch-size` texts (the `encode_*` default, 32), measured in the same run; configurations alternate order between
rounds, figures are medians. Embeddings are compared against the peer's (max abs difference).
Target: >= 1.3x tokens/s at <= 0.8x peak memory, equal embeddings (1e-5).

    nice -n 5 .venv/bin/python bench/token_budget.py [--n 600 --budgets 8192,4096 --batch-size 32 --rounds 2]
"""
from __future__ import annotations
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Peak, emit, run_worker, median, spread, md_table, write_results, check

NAME = "token_budget"
WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there been one all we their has would when if so what out up more no about can its into only "
         "other time some could these two may first then do any like my now over such our man me even most made after "
         "also did many before must through back years where much your way well down should because each just those "
         "people how too little state good very make world still own see men work long get here between both life being "
         "under never day same another know while last might us great old year off come since against go came right used "
         "take three protein cell theorem integral function gradient proof economics robot sensor library variable").split()


def corpus(n: int, median_words: float, sigma: float, seed: int) -> list[str]:
    "`n` texts of log-normal word counts (clipped to 3..4000 words) of random common words; seeded."
    import numpy as np
    rng = np.random.default_rng(seed)
    counts = np.clip(np.round(rng.lognormal(np.log(median_words), sigma, n)), 3, 4000).astype(int)
    return [" ".join(rng.choice(WORDS, c)) for c in counts]


def worker(cfg: dict) -> dict:
    import numpy as np, torch
    from reasonembed.models import Embedder, token_lengths
    if cfg.get("threads"): torch.set_num_threads(cfg["threads"])
    texts = corpus(cfg["n"], cfg["median_words"], cfg["sigma"], cfg["seed"])
    emb = Embedder.from_pretrained("minilm", device="cpu", dtype="float32", passage_max_len=cfg["max_len"],
                                   max_batch_tokens=cfg["budget"])
    lengths = token_lengths(emb.tokenizer, texts, cfg["max_len"], emb._manual_eos)
    emb.encode_corpus(corpus(16, cfg["median_words"], cfg["sigma"], cfg["seed"] + 1), batch_size=cfg["batch_size"], show_progress=False)
    with Peak() as pk:
        t = time.perf_counter()
        out = emb.encode_corpus(texts, batch_size=cfg["batch_size"], show_progress=False)
        dt = time.perf_counter() - t
    np.save(cfg["emb_path"], out)
    return {"encode_s": dt, "tokens": int(sum(lengths)), "tokens_per_s": sum(lengths) / dt, "peak_delta_mib": pk.delta_mib,
            "peak_mib": pk.peak_mib, "rss_before_mib": pk.start_mib, "len_p50": float(np.median(lengths)),
            "len_p90": float(np.percentile(lengths, 90)), "len_max": int(max(lengths)), "len_min": int(min(lengths)),
            "at_cut": float(np.mean(np.array(lengths) >= cfg["max_len"]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=600, help="texts in the corpus")
    ap.add_argument("--median-words", type=float, default=150.0)
    ap.add_argument("--sigma", type=float, default=1.2, help="log-normal sigma of the word counts (the tail)")
    ap.add_argument("--max-len", type=int, default=512, help="passage_max_len (MiniLM's limit)")
    ap.add_argument("--batch-size", type=int, default=32, help="the peer's texts per batch")
    ap.add_argument("--budgets", default="8192,4096", help="max_batch_tokens values to measure")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the other benchmarks)")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    if a.worker:
        emit(worker(json.loads(a.worker))); return
    import numpy as np
    tmp = Path(tempfile.mkdtemp(prefix="token_budget_"))
    configs = [None] + [int(b) for b in a.budgets.split(",")]
    raw = {str(c): [] for c in configs}
    for r in range(a.rounds):
        for c in (configs if r % 2 == 0 else configs[::-1]):
            cfg = dict(n=a.n, median_words=a.median_words, sigma=a.sigma, max_len=a.max_len, batch_size=a.batch_size, budget=c,
                       seed=a.seed, threads=a.threads, emb_path=str(tmp / f"{c}.npy"))
            res = run_worker(__file__, cfg)
            res["max_abs_diff"] = None
            raw[str(c)].append(res)
            if c is not None:
                res["max_abs_diff"] = float(np.abs(np.load(tmp / f"{c}.npy") - np.load(tmp / "None.npy")).max()) \
                    if (tmp / "None.npy").exists() else None
            print(f"round {r} {'fixed ' + str(a.batch_size) if c is None else 'budget ' + str(c)}: "
                  f"{res['tokens_per_s']:,.0f} tokens/s, peak +{res['peak_delta_mib']:.0f} MiB", flush=True)
    base = raw["None"]
    b_tps, b_mem = median([x["tokens_per_s"] for x in base]), median([x["peak_delta_mib"] for x in base])
    rows = []
    for c in configs:
        rs = raw[str(c)]
        tps, mem = median([x["tokens_per_s"] for x in rs]), median([x["peak_delta_mib"] for x in rs])
        diffs = [x["max_abs_diff"] for x in rs if x["max_abs_diff"] is not None]
        rows.append(dict(config=f"fixed {a.batch_size} texts" if c is None else f"budget {c} tokens", tokens_per_s=tps,
                         spread=spread([x["tokens_per_s"] for x in rs]), speed_x=tps / b_tps, peak_mib=mem,
                         peak_x=mem / b_mem, max_abs_diff=f"{max(diffs):.1e}" if diffs else None,
                         met=None if c is None else (check(tps / b_tps, 1.3) and check(mem / b_mem, 0.8, False)
                                                     and bool(diffs) and max(diffs) <= 1e-5)))
    L = base[0]
    md = (f"Corpus: {a.n} synthetic texts, log-normal words (median {a.median_words:g}, sigma {a.sigma:g}), tokenized length "
          f"min {L['len_min']}, median {L['len_p50']:.0f}, p90 {L['len_p90']:.0f}, max {L['len_max']} "
          f"({100 * L['at_cut']:.0f}% at the {a.max_len}-token cut); {L['tokens']:,} real tokens. MiniLM, fp32, CPU, "
          f"{a.threads} thread(s), {a.rounds} rounds (medians). Peak = peak RSS above the RSS before the encode (VmHWM).\n\n"
          + md_table(rows, [("config", "configuration"), ("tokens_per_s", "tokens/s"), ("spread", "spread"),
                            ("speed_x", "tokens/s vs fixed"), ("peak_mib", "peak MiB"), ("peak_x", "peak vs fixed"),
                            ("max_abs_diff", "max |Δ emb|"), ("met", "target met")]))
    write_results(NAME, {"args": vars(a), "raw": raw, "rows": rows}, md, a.out_dir)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
