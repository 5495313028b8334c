"""Benchmark 1: training throughput and peak memory, reasonembed's trainer vs sentence-transformers, on MiniLM (CPU).

Configurations (each in a fresh subprocess, interleaved over `--rounds`):
  ours-basic   `reasonembed.training.train`, mode basic (plain InfoNCE)
  ours-ri      the same, mode ri with RI weighting from step 0 (one extra no-grad forward of q')
  ours-gc      mode basic with GradCache (`grad_cache_chunk`), the peer of the cached ST loss   (--with-gradcache)
  st-mnrl      SentenceTransformerTrainer + MultipleNegativesRankingLoss(scale = 1/tau)
  st-cmnrl     SentenceTransformerTrainer + CachedMultipleNegativesRankingLoss(mini_batch_size = chunk)
Identical data (`demo_samples`, queries formatted with the same instruction template), batch size, group size
(1 positive + G-1 negatives), max length, fp32, AdamW. Step time = wall time between consecutive optimiser steps
(data preparation included), median over the measured steps after `--warmup` steps.
Targets: ours-basic samples/s >= 1.2x st-mnrl; ours-ri step time <= 1.35x ours-basic.

    nice -n 5 .venv/bin/python bench/train_throughput.py [--batch-size 8 --group-size 4 --max-len 128 --steps 6]
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Peak, emit, run_worker, median, spread, md_table, write_results, check, rss_mib, reset_peak, hwm_mib

NAME = "train_throughput"


def _samples(n: int, group_size: int, seed: int = 0):
    from reasonembed.batching import demo_samples
    return demo_samples(n=n, n_neg=group_size - 1, seed=seed)


# ------------------------------------------------------------------ workers
def worker_ours(cfg: dict) -> dict:
    import torch
    import reasonembed.training as T
    torch.set_num_threads(cfg["threads"]) if cfg.get("threads") else None
    steps = cfg["warmup"] + cfg["steps"]
    samples = _samples(cfg["batch_size"] * steps, cfg["group_size"], cfg["seed"])
    mem = {}
    orig = T.make_optimizer
    def hooked(named, c):   # called after the model is loaded, before the first step: the training-overhead baseline
        import gc; gc.collect()
        mem["after_load_mib"] = rss_mib(); mem["reset"] = reset_peak()
        return orig(named, c)
    T.make_optimizer = hooked
    cpu_marks = []
    orig_fb = T.forward_backward
    def fb(*args, **kw):   # step boundaries in process CPU time (all threads: the tokenizer thread's work counts too)
        cpu_marks.append(time.process_time()); return orig_fb(*args, **kw)
    T.forward_backward = fb
    with tempfile.TemporaryDirectory() as tmp:
        tc = _train_config(cfg, cfg["mode"], max_steps=steps, warmup_steps=0, lr=1e-5, seed=cfg["seed"], output_dir=tmp,
                           save_every=0, save_model=False, plot=False, progress=False, resume=False, log_every=0,
                           grad_cache_chunk=cfg.get("chunk", 0) if cfg.get("gradcache") else 0)
        t0 = time.perf_counter()
        # stop_at = steps - 1 would skip the final checkpoint, but train() checkpoints at its stop: keep it, it is after the timed steps
        T.train(tc, samples=samples)
        rows = T.read_log(Path(tmp) / "train_log.jsonl")
    peak = hwm_mib()
    dts = [r["queries"] / r["samples_per_s"] for r in rows]
    cpu = [b - a for a, b in zip(cpu_marks, cpu_marks[1:])]
    return {"step_s": dts[cfg["warmup"]:], "all_step_s": dts, "cpu_step_s": cpu[cfg["warmup"]:], "wall_s": time.perf_counter() - t0,
            "after_load_mib": mem.get("after_load_mib"), "peak_mib": peak,
            "train_delta_mib": peak - mem["after_load_mib"] if mem.get("reset") else None,
            "last_loss": rows[-1]["loss"]}


def _train_config(cfg: dict, mode: str, **kw):
    "The TrainConfig of a benchmark configuration (MiniLM on CPU, the benchmark's sizes and temperature)."
    import reasonembed.training as T
    from reasonembed.config import from_dict
    return from_dict(T.TrainConfig, {"embedder": {"model": "minilm", "query_max_len": cfg["max_len"], "passage_max_len": cfg["max_len"],
                                                  "device": "cpu"},
                                     "loss": {"mode": mode, "ri_start_step": 0, "temperature": cfg.get("tau", 0.05)},
                                     "batching": {"batch_size": cfg["batch_size"], "group_size": cfg["group_size"]}, **kw})


def worker_ab(cfg: dict) -> dict:
    "Basic and RI steps alternated in ONE process (same model, same batches): the RI overhead with the noise shared."
    import torch
    import reasonembed.training as T
    import reasonembed.batching as Bt
    from reasonembed.models import Embedder
    if cfg.get("threads"): torch.set_num_threads(cfg["threads"])
    B, G = cfg["batch_size"], cfg["group_size"]
    n = cfg["warmup"] + cfg["steps"]
    samples = _samples(B * n, G, cfg["seed"])
    tcs = {m: _train_config(cfg, m, lr=1e-5) for m in ("basic", "ri")}
    T.seed_everything(cfg["seed"])
    emb = Embedder(T.training_embedder(tcs["basic"], "cpu")); emb.train()
    named = [(k, p) for k, p in emb.model.named_parameters() if p.requires_grad]
    opt = T.make_optimizer(named, tcs["basic"])
    sizes = {samples[0].domain: (G, B)}
    plan = Bt.plan_epoch(samples, sizes, 0, cfg["seed"])
    times = {"basic": [], "ri": []}; cpus = {"basic": [], "ri": []}
    for k in range(n):
        b = Bt.make_batch(samples, plan[k % len(plan)], cfg["seed"])
        for m in (("basic", "ri") if k % 2 == 0 else ("ri", "basic")):
            t = time.perf_counter(); c = time.process_time()
            inputs = T.tokenize_batch(emb, b, tcs[m].loss.needs_reasoning_query)
            T.forward_backward(emb, b, inputs, tcs[m].loss, k, T.Updater([p for _, p in named], opt, None))
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            opt.step(); opt.zero_grad(set_to_none=True)
            if k >= cfg["warmup"]: times[m].append(time.perf_counter() - t); cpus[m].append(time.process_time() - c)
    return {"basic_step_s": times["basic"], "ri_step_s": times["ri"], "basic_cpu_s": cpus["basic"], "ri_cpu_s": cpus["ri"]}


def worker_st(cfg: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    try: from sentence_transformers.sentence_transformer import losses
    except ImportError: from sentence_transformers import losses
    from reasonembed.hub import resolve_model
    from reasonembed.core import seed_everything
    from reasonembed.models import format_query
    torch.set_num_threads(cfg["threads"]) if cfg.get("threads") else None
    seed_everything(cfg["seed"])
    steps = cfg["warmup"] + cfg["steps"]
    samples = _samples(cfg["batch_size"] * steps, cfg["group_size"], cfg["seed"])
    model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    model.max_seq_length = cfg["max_len"]
    cols = {"anchor": [format_query(s.query, s.instruction) for s in samples], "positive": [s.pos[0] for s in samples]}
    for j in range(cfg["group_size"] - 1): cols[f"negative_{j + 1}"] = [s.neg[j] for s in samples]
    ds = Dataset.from_dict(cols)
    scale = 1.0 / cfg["tau"]
    loss = (losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=cfg["chunk"]) if cfg["cached"]
            else losses.MultipleNegativesRankingLoss(model, scale=scale))
    times, cpu_marks = [], []
    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k): times.append(time.perf_counter()); cpu_marks.append(time.process_time())
        def on_step_end(self, *a, **k): times.append(time.perf_counter()); cpu_marks.append(time.process_time())
    import gc; gc.collect()
    after_load = rss_mib(); ok = reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(output_dir=tmp, per_device_train_batch_size=cfg["batch_size"], max_steps=steps,
                                                    learning_rate=1e-5, warmup_steps=0, save_strategy="no", report_to="none",
                                                    logging_steps=10_000, disable_tqdm=True, dataloader_drop_last=True,
                                                    seed=cfg["seed"], use_cpu=True, max_grad_norm=1.0)
        tr = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss, callbacks=[Clock()])
        t0 = time.perf_counter()
        out = tr.train()
    peak = hwm_mib()
    dts = [b - a for a, b in zip(times, times[1:])]
    cpu = [b - a for a, b in zip(cpu_marks, cpu_marks[1:])]
    return {"step_s": dts[cfg["warmup"]:], "all_step_s": dts, "cpu_step_s": cpu[cfg["warmup"]:], "wall_s": time.perf_counter() - t0, "after_load_mib": after_load,
            "peak_mib": peak, "train_delta_mib": peak - after_load if ok else None, "last_loss": float(out.training_loss)}


# ------------------------------------------------------------------ parent
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=8, help="queries per step")
    ap.add_argument("--group-size", type=int, default=4, help="passages per query (1 positive + G-1 negatives)")
    ap.add_argument("--max-len", type=int, default=128, help="max tokens of queries and passages (both sides)")
    ap.add_argument("--steps", type=int, default=6, help="measured steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="steps discarded at the start of each run")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all configurations")
    ap.add_argument("--chunk", type=int, default=8, help="GradCache / CachedMNRL mini-batch size")
    ap.add_argument("--tau", type=float, default=0.02, help="temperature (ST scale = 1/tau)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine two OpenMP threads thrash when other jobs hold a core; 0: torch default)")
    ap.add_argument("--no-gradcache", action="store_true", help="skip ours-gc and st-cmnrl")
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    if a.worker:
        cfg = json.loads(a.worker)
        fn = {"ours": worker_ours, "st": worker_st, "ab": worker_ab}[cfg["kind"]]
        emit({"name": cfg["name"], **fn(cfg)}); return
    base = dict(batch_size=a.batch_size, group_size=a.group_size, max_len=a.max_len, steps=a.steps, warmup=a.warmup,
                chunk=a.chunk, tau=a.tau, seed=0, threads=a.threads)
    configs = [dict(name="ours-basic", kind="ours", mode="basic"), dict(name="ours-ri", kind="ours", mode="ri"),
               dict(name="st-mnrl", kind="st", cached=False)]
    if not a.no_gradcache:
        configs += [dict(name="ours-gc", kind="ours", mode="basic", gradcache=True), dict(name="st-cmnrl", kind="st", cached=True)]
    res: dict[str, list[dict]] = {c["name"]: [] for c in configs}
    for r in range(a.rounds):
        for c in (configs if r % 2 == 0 else configs[::-1]):      # alternate the order between rounds
            out = run_worker(__file__, {**base, **c})
            res[c["name"]].append(out)
            print(f"round {r + 1} {c['name']}: median step {median(out['step_s']):.3f} s, peak {out['peak_mib']:.0f} MiB", flush=True)
    ab = run_worker(__file__, {**base, "name": "ab", "kind": "ab"})   # RI vs basic, alternated step by step in one process
    ab_ratio = median(ab["ri_step_s"]) / median(ab["basic_step_s"])
    print(f"in-process A/B: basic {median(ab['basic_step_s']):.2f} s, ri {median(ab['ri_step_s']):.2f} s -> {ab_ratio:.2f}x", flush=True)
    rows = []
    for c in configs:
        runs = res[c["name"]]
        st = [x for r in runs for x in r["step_s"]]
        cs = [x for r in runs for x in r["cpu_step_s"]]
        rows.append(dict(config=c["name"], step_s=median(st), cpu_s=median(cs), samples_per_s=a.batch_size / median(st), spread=spread([median(r["step_s"]) for r in runs]),
                         peak_mib=median([r["peak_mib"] for r in runs]), train_delta_mib=median([r["train_delta_mib"] for r in runs if r["train_delta_mib"] is not None]),
                         last_loss=runs[-1]["last_loss"]))
    by = {r["config"]: r for r in rows}
    ref = by["st-mnrl"]
    for r in rows:
        r["speed_vs_st_mnrl"] = ref["step_s"] / r["step_s"]
        r["cpu_speed_vs_st_mnrl"] = ref["cpu_s"] / r["cpu_s"]
        r["cpu_vs_ours_basic"] = r["cpu_s"] / by["ours-basic"]["cpu_s"]
        r["step_vs_ours_basic"] = r["step_s"] / by["ours-basic"]["step_s"]
        r["peak_vs_st_mnrl"] = r["peak_mib"] / ref["peak_mib"]
    ab_cpu = median(ab["ri_cpu_s"]) / median(ab["basic_cpu_s"])
    targets = {"basic_vs_st_samples_per_s (wall)": (by["ours-basic"]["speed_vs_st_mnrl"], 1.2, True),
               "basic_vs_st_samples_per_s (CPU time)": (by["ours-basic"]["cpu_speed_vs_st_mnrl"], 1.2, True),
               "ri_vs_basic_step_time (train(), separate processes)": (by["ours-ri"]["step_vs_ours_basic"], 1.35, False),
               "ri_vs_basic_step_time (train(), CPU time)": (by["ours-ri"]["cpu_vs_ours_basic"], 1.35, False),
               "ri_vs_basic_step_time (alternated in one process, wall)": (ab_ratio, 1.35, False),
               "ri_vs_basic_step_time (alternated in one process, CPU time)": (ab_cpu, 1.35, False)}
    if "ours-gc" in by: targets["gc_vs_st_cmnrl_samples_per_s (info)"] = (by["st-cmnrl"]["step_s"] / by["ours-gc"]["step_s"], None, True)
    tgt_rows = [dict(target=k, value=v, goal=(f"{'>=' if hi else '<='} {t}" if t else "–"), met=check(v, t, hi) if t else None)
                for k, (v, t, hi) in targets.items()]
    md = (f"Training throughput, MiniLM fp32 CPU: batch {a.batch_size} queries x group {a.group_size} passages, max length "
          f"{a.max_len}, {a.steps} measured steps after {a.warmup} warm-up, {a.rounds} interleaved rounds, one fresh process per run. Wall time is what a user waits; process CPU time (all threads) is far less sensitive to other jobs on a shared machine.\n\n"
          + md_table(rows, [("config", "config"), ("step_s", "step s (median)"), ("samples_per_s", "queries/s"),
                            ("speed_vs_st_mnrl", "speed vs st-mnrl"), ("step_vs_ours_basic", "step vs ours-basic"),
                            ("cpu_s", "CPU s/step"), ("cpu_speed_vs_st_mnrl", "CPU speed vs st-mnrl"), ("cpu_vs_ours_basic", "CPU vs ours-basic"),
                            ("spread", "run spread"), ("peak_mib", "peak RSS MiB"), ("train_delta_mib", "peak - after load MiB"),
                            ("peak_vs_st_mnrl", "peak vs st-mnrl")])
          + "\n\n" + md_table(tgt_rows, [("target", "target"), ("value", "measured"), ("goal", "goal"), ("met", "met")]))
    md += (f"\n\nIn-process A/B (same model and batches, basic and RI steps alternated, tokenization + forward/backward + "
           f"optimiser): basic {median(ab['basic_step_s']):.2f} s, RI {median(ab['ri_step_s']):.2f} s per step.")
    write_results(NAME, {"args": vars(a), "rows": rows, "targets": tgt_rows, "runs": res, "ab": ab}, md, a.out_dir)


if __name__ == "__main__":
    main()
