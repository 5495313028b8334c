"""DeepSpeed ZeRO-1 check (GPU, by hand): the same short LoRA RI run with and without `deepspeed: configs/zero1.json`,
both under torchrun; the losses must be finite and close (the first step equal up to bf16 rounding, every step within
0.05: seen on an H100, equal for 3 steps and then within 0.016), and the DeepSpeed model must save and reload.
usage: python tests/gpu/deepspeed_check.py [NPROC]
"""
import json, math, subprocess, sys, tempfile
from pathlib import Path
import yaml
from reasonembed.data import write_jsonl
from reasonembed.testing import make_tiny_decoder
from reasonembed.models import Embedder
from reasonembed.batching import demo_samples
from reasonembed.training import read_log

if __name__ == "__main__":
    nproc = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    tmp = Path(tempfile.mkdtemp())
    S = demo_samples(64, n_neg=8, seed=1)
    write_jsonl(tmp / "train.jsonl", S)
    tiny = make_tiny_decoder(tmp / "tiny", texts=[s.pos[0] for s in S])
    base = dict(data=[str(tmp / "train.jsonl")], lr=1e-3, max_steps=8, save_every=0, progress=False, log_every=1, seed=3, plot=False,
                embedder=dict(model=str(tiny), query_max_len=64, passage_max_len=128, dtype="bfloat16",
                              lora={"r": 8, "alpha": 16, "dropout": 0.0}),
                batching=dict(batch_size=4, group_size=4), loss=dict(mode="ri", ri_start_step=2))
    logs = {}
    for name, extra in [("plain", {}), ("zero1", {"deepspeed": str(Path("configs/zero1.json").resolve())})]:
        cfg = tmp / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({**base, **extra, "output_dir": str(tmp / name)}))
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "reasonembed.cli",
                            "train", "--config", str(cfg)], capture_output=True, text=True)
        print(name, "exit", r.returncode); print(r.stdout[-1500:], r.stderr[-3000:] if r.returncode else "")
        assert r.returncode == 0, name
        logs[name] = [x["loss"] for x in read_log(tmp / name)]
        print(name, [round(x, 4) for x in logs[name]])
    assert all(math.isfinite(x) for x in logs["zero1"]) and len(logs["zero1"]) == len(logs["plain"]) == 8
    diffs = [abs(a - b) for a, b in zip(logs["plain"], logs["zero1"])]
    print("max |loss difference|", max(diffs))
    assert diffs[0] < 1e-3, f"first step differs by {diffs[0]}: DeepSpeed does not compute the same loss"
    assert max(diffs) < 0.05, f"losses drift apart (max difference {max(diffs)}): not the same training"
    e = Embedder.from_pretrained(str(tmp / "zero1" / "model")); print("reloaded", e)
    print(json.dumps({"ok": True, "plain": logs["plain"], "zero1": logs["zero1"]}))
