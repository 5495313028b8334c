"""Smoke test of the vLLM backend (run by nbs/04_llm.ipynb under the `vllm` flag, in its own process).

usage: python vllm_smoke.py CACHE_FILE REPORT_JSON
Generates with make_llm("vllm", "smollm2") into CACHE_FILE (seeded n=2 samples, again from the cache, greedy), runs
the resume test (crash after every 2 completions, restart) on the same engine, and writes what it got to REPORT_JSON.
vLLM starts worker processes, hence the __main__ guard.
"""
import copy, dataclasses, json, sys


def main(cache_file: str, report: str) -> None:
    from reasonembed.llm import ResponseCache, SamplingParams
    from reasonembed.llm_backends import make_llm
    from reasonembed.testing import run_until_done
    llm = make_llm("vllm", "smollm2", cache_path=cache_file, max_model_len=2048, show_progress=False)
    prompts = [[{"role": "user", "content": q}] for q in ["Name a fruit.", "Say hello to Bob.", "Write a haiku about rain."]]
    params = SamplingParams(temperature=0.8, top_p=0.95, top_k=50, max_tokens=16, seed=1, n=2)
    sampled = llm.chat(prompts, params, cache_tag="")
    again = llm.chat(prompts, params, cache_tag="")
    capital = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    greedy = llm.chat([capital], SamplingParams(temperature=0, max_tokens=8))[0][0]
    usage = dict(llm.usage)

    # resume: the same engine behind fresh LLM objects on other cache files; crash after every 2 completions
    def fresh(path):
        other = copy.copy(llm); other.cache = ResponseCache(path); other.usage = {k: 0 for k in llm.usage}
        return other
    def stage(l):
        first = l.chat(prompts, SamplingParams(temperature=0.8, max_tokens=12, seed=7), cache_tag="first")
        return first, l.chat([[{"role": "user", "content": f"Is this polite? {a[0]}"}] for a in first],
                             SamplingParams(temperature=0.8, max_tokens=12, seed=7), cache_tag="second")
    ref = fresh(cache_file + ".ref"); ref_out = stage(ref)
    res_out, calls, crashes = run_until_done(lambda: fresh(cache_file + ".run"), stage, crash_every=2)
    out = dict(prompts=prompts, params=dataclasses.asdict(params), sampled=sampled, sampled_again=again, greedy=greedy,
               usage=usage, resume=dict(ref=ref_out, resumed=res_out, ref_calls=ref.usage["calls"], calls=calls, crashes=crashes))
    with open(report, "w") as f: json.dump(out, f, indent=1)
    llm.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
