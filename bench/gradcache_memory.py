"""Benchmark 3: GradCache memory, peak RSS of one training step vs batch size (16 -> 256) at a fixed chunk size.

Each (batch size, mode) runs in a fresh subprocess: load MiniLM, one warm-up step at batch = chunk (so that one-off
allocations - gradients, oneDNN caches - happen before the measurement), reset the kernel's peak-RSS counter, then one
`reasonembed.training.forward_backward` step at the measured batch size: with GradCache (`grad_cache_chunk`) and,
as the peer, without it (plain backward over the whole batch). Reported: the process's peak RSS, and the step's own
peak above the RSS before the step ("step delta").
Target: GradCache peak RSS at batch 256 within 1.3x of batch 16.

    nice -n 5 .venv/bin/python bench/gradcache_memory.py [--batch-sizes 16,32,64,128,256 --chunk 16 --group-size 2 --max-len 64]
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Peak, emit, run_worker, median, md_table, write_results, check, hwm_mib, rss_mib

NAME = "gradcache_memory"


def worker(cfg: dict) -> dict:
    import torch
    import reasonembed.training as T
    import reasonembed.batching as Bt
    from reasonembed.config import from_dict
    from reasonembed.models import Embedder
    if cfg.get("threads"): torch.set_num_threads(cfg["threads"])
    B, G, C = cfg["batch_size"], cfg["group_size"], cfg["chunk"]
    tc = from_dict(T.TrainConfig, {"embedder": {"model": "minilm", "query_max_len": cfg["max_len"], "passage_max_len": cfg["max_len"],
                                                "device": "cpu"}, "loss": {"mode": "basic", "temperature": 0.05},
                                   "grad_cache_chunk": C if cfg["gradcache"] else 0, "seed": 0})
    T.seed_everything(0)
    emb = Embedder(T.training_embedder(tc, "cpu")); emb.train()
    updater = T.Updater([p for p in emb.model.parameters() if p.requires_grad], None, None)
    samples = Bt.demo_samples(n=max(B, C), n_neg=G - 1, seed=0)
    def batch(n):
        pb = Bt.PlannedBatch(0, 0, samples[0].domain, G, list(range(n)))
        b = Bt.make_batch(samples, pb, 0)
        return b, T.tokenize_batch(emb, b, False)
    wb, wi = batch(C)                      # warm-up at chunk size: identical for every configuration
    T.forward_backward(emb, wb, wi, tc.loss, 0, updater, tc.grad_cache_chunk)
    for p in emb.model.parameters():
        if p.grad is not None: p.grad.zero_()
    mb, mi = batch(B)
    before_load = None
    with Peak() as pk:
        t = time.perf_counter()
        loss, _ = T.forward_backward(emb, mb, mi, tc.loss, 0, updater, tc.grad_cache_chunk)
        dt = time.perf_counter() - t
    return {"step_s": dt, "loss": loss, "rss_before_step_mib": pk.start_mib, "peak_mib": pk.peak_mib, "step_delta_mib": pk.delta_mib,
            "texts": B * (1 + G), "max_tokens": int(mi["p"]["input_ids"].shape[1])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch-sizes", default="16,32,64,128,256", help="queries per step")
    ap.add_argument("--chunk", type=int, default=16, help="GradCache chunk size (texts per forward)")
    ap.add_argument("--group-size", type=int, default=2, help="passages per query")
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--no-plain", action="store_true", help="skip the plain (no GradCache) peer")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine two OpenMP threads thrash when other jobs hold a core; 0: torch default)")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    if a.worker:
        emit(worker(json.loads(a.worker))); return
    bss = [int(x) for x in a.batch_sizes.split(",")]
    modes = [True] + ([] if a.no_plain else [False])
    rows = []
    for bs in bss:
        for gc in modes:
            cfg = dict(batch_size=bs, group_size=a.group_size, chunk=a.chunk, max_len=a.max_len, gradcache=gc, threads=a.threads)
            r = run_worker(__file__, cfg)
            rows.append(dict(mode="gradcache" if gc else "plain", batch=bs, texts=r["texts"], step_s=r["step_s"], peak_mib=r["peak_mib"],
                             step_delta_mib=r["step_delta_mib"], before_mib=r["rss_before_step_mib"]))
            print(f"{rows[-1]['mode']} batch {bs}: peak {r['peak_mib']:.0f} MiB (+{r['step_delta_mib']:.0f}), {r['step_s']:.1f} s", flush=True)
    for m in ("gradcache", "plain"):
        mine = [r for r in rows if r["mode"] == m]
        if not mine: continue
        for r in mine:
            r["peak_vs_first"] = r["peak_mib"] / mine[0]["peak_mib"]
            r["delta_vs_first"] = r["step_delta_mib"] / mine[0]["step_delta_mib"] if mine[0]["step_delta_mib"] else None
    gcr = [r for r in rows if r["mode"] == "gradcache"]
    ratio = gcr[-1]["peak_mib"] / gcr[0]["peak_mib"]
    tgt = [dict(target=f"gradcache peak RSS, batch {bss[-1]} / batch {bss[0]}", value=ratio, goal="<= 1.3", met=check(ratio, 1.3, False)),
           dict(target=f"gradcache step delta, batch {bss[-1]} / batch {bss[0]} (info)", value=gcr[-1]["delta_vs_first"], goal="–", met=None)]
    plain = {r["batch"]: r for r in rows if r["mode"] == "plain"}
    for r in gcr:
        if r["batch"] in plain: r["plain_peak_mib"] = plain[r["batch"]]["peak_mib"]; r["gc_vs_plain"] = r["peak_mib"] / plain[r["batch"]]["peak_mib"]
    md = (f"GradCache memory: MiniLM fp32, group size {a.group_size}, max length {a.max_len}, chunk {a.chunk}; one "
          f"forward_backward step per fresh process after a warm-up step at batch {a.chunk}.\n\n"
          + md_table(rows, [("mode", "mode"), ("batch", "batch (queries)"), ("texts", "texts"), ("peak_mib", "peak RSS MiB"),
                            ("peak_vs_first", "peak vs batch " + str(bss[0])), ("step_delta_mib", "step delta MiB"),
                            ("delta_vs_first", "delta vs batch " + str(bss[0])), ("step_s", "step s")])
          + "\n\n" + md_table(tgt, [("target", "target"), ("value", "measured"), ("goal", "goal"), ("met", "met")]))
    write_results(NAME, {"args": vars(a), "rows": rows, "targets": tgt}, md, a.out_dir)


if __name__ == "__main__":
    main()
