"""Shared helpers of the benchmarks: machine facts, peak memory, subprocess workers, medians, JSON + markdown output.

Every benchmark runs each configuration in a fresh subprocess (`python bench/<name>.py --worker '<json>'`) so that the
peak memory of one configuration is not inflated by another, and interleaves the configurations over rounds so that
noise from other jobs on this shared machine hits all of them alike. Figures are reported as ratios against the peer
measured in the same run.
"""
from __future__ import annotations
import json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "outputs" / "bench"
MARK = "@@BENCH@@"   # the line of a worker's stdout that carries its JSON result


# ---------------------------------------------------------------- machine facts
def machine_info() -> dict:
    "CPU model, cores, flags that matter for bf16, memory, library versions, load average."
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        txt = Path("/proc/cpuinfo").read_text()
        name = next((l.split(":", 1)[1].strip() for l in txt.splitlines() if l.startswith("model name")), "?")
        flags = next((l.split(":", 1)[1].split() for l in txt.splitlines() if l.startswith("flags")), [])
        info["cpu"] = name
        info["cpu_flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
        fam = next((l.split(":", 1)[1].strip() for l in txt.splitlines() if l.startswith("cpu family")), "?")
        info["cpu_family"] = fam
    except OSError: pass
    try:
        mem = Path("/proc/meminfo").read_text().split()
        info["mem_gib"] = round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError): pass
    try:
        import torch
        info["torch"] = torch.__version__; info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
    except ImportError: pass
    for mod in ("transformers", "sentence_transformers", "faiss", "vllm"):
        try: info[mod] = __import__(mod).__version__
        except Exception: pass
    return info


def machine_line(info: dict) -> str:
    flags = ",".join(info.get("cpu_flags", []))
    return (f"{info.get('cpu', '?')} (family {info.get('cpu_family', '?')}, {flags}), {info.get('cpus')} cores, "
            f"{info.get('mem_gib', '?')} GiB, torch {info.get('torch', '?')}, load avg at start {info.get('loadavg_start')}")


# ---------------------------------------------------------------- memory
def rss_mib() -> float:
    "Current resident set size (MiB)."
    for l in Path("/proc/self/status").read_text().splitlines():
        if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024
    return float("nan")


def hwm_mib() -> float:
    "Peak resident set size since start or the last `reset_peak()` (MiB)."
    for l in Path("/proc/self/status").read_text().splitlines():
        if l.startswith("VmHWM:"): return int(l.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    "Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0: write 5 to clear_refs)."
    try:
        Path("/proc/self/clear_refs").write_text("5"); return True
    except OSError: return False


class Peak:
    "Peak RSS over a region, relative to the RSS when it started: `with Peak() as pk: ...; pk.delta_mib, pk.peak_mib`."
    def __enter__(self):
        import gc; gc.collect()
        self.start_mib = rss_mib(); self.reset = reset_peak(); return self
    def __exit__(self, *exc):
        self.peak_mib = hwm_mib(); self.delta_mib = self.peak_mib - self.start_mib if self.reset else float("nan")


# ---------------------------------------------------------------- workers
def emit(result: dict) -> None:
    "Worker side: print the JSON result on a marked line (everything else on stdout is ignored)."
    result = {**result, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(MARK + json.dumps(result), flush=True)


def run_worker(script: str | Path, cfg: dict, python: str | None = None, env: dict | None = None, timeout: float = 1800,
               nice: int = 0) -> dict:
    "Parent side: run `script --worker cfg` in a fresh process; returns its JSON result (raises with its output tail on failure)."
    cmd = ([("nice"), "-n", str(nice)] if nice else []) + [python or sys.executable, str(script), "--worker", json.dumps(cfg)]
    e = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
             TRANSFORMERS_VERBOSITY="error", TQDM_DISABLE="1")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    if cfg.get("threads"): e.update(OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]))
    if env: e.update(env)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout, cwd=ROOT)
    lines = [l for l in p.stdout.splitlines() if l.startswith(MARK)]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"worker {cfg} failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
    res = json.loads(lines[-1][len(MARK):])
    res["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return res


# ---------------------------------------------------------------- stats and output
def median(xs): xs = [x for x in xs if x == x]; return statistics.median(xs) if xs else float("nan")


def spread(xs) -> float:
    "Relative spread (max-min)/median of repeated measurements."
    xs = [x for x in xs if x == x]
    return (max(xs) - min(xs)) / statistics.median(xs) if len(xs) > 1 and statistics.median(xs) else 0.0


def fmt(v, nd: int = 2) -> str:
    if v is None: return "–"
    if isinstance(v, bool): return "yes" if v else "NO"
    if isinstance(v, float):
        if v != v: return "–"
        return f"{v:,.{nd}f}"
    return str(v)


def md_table(rows: list[dict], cols: list[tuple[str, str]] | None = None) -> str:
    "Markdown table of `rows` with `(key, header)` columns."
    if not rows: return ""
    cols = cols or [(k, k) for k in rows[0]]
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows: out.append("| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |")
    return "\n".join(out)


def write_results(name: str, result: dict, markdown: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    "Write `outputs/bench/<name>.json` and `<name>.md` (with the machine line on top); returns both paths."
    out = Path(out_dir) if out_dir else OUT
    out.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", machine_info())
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    jp, mp = out / f"{name}.json", out / f"{name}.md"
    jp.write_text(json.dumps(result, indent=2, default=str))
    head = f"# {name}\n\nMachine: {machine_line(result['machine'])}; {result['machine']['date']}.\n\n"
    mp.write_text(head + markdown.strip() + "\n")
    print(head + markdown.strip())
    print(f"\nwrote {jp} and {mp}")
    return jp, mp


def check(value: float, target: float, higher_is_better: bool = True) -> bool | None:
    if value is None or value != value: return None
    return value >= target if higher_is_better else value <= target
