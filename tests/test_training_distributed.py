"""Real torch.distributed training (gloo, 2 CPU processes under torchrun) equals one process on the concatenated batch:
same per-step losses and RI statistics, gradient norms divided by the world size (the authors' convention: every rank
computes the global loss and the gradients are averaged), and the same final weights (Adam without clipping is
invariant to that constant scale). Worker: tests/train_worker.py."""
import json, pathlib, subprocess, sys

import pytest
import torch
from safetensors.torch import load_file

from train_worker import training_set   # tests/train_worker.py: the data and model these tests share
from reasonembed.distributed import checkpoints
from reasonembed.training import read_log

WORKER = pathlib.Path(__file__).resolve().parent / "train_worker.py"


def _run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]


@pytest.mark.parametrize("chunk", [0, 2])
def test_two_process_training_equals_single_process(tmp_path, chunk):
    "chunk=2: both runs use GradCache with chunks of 2 texts."
    args = training_set(tmp_path)
    model = pathlib.Path(args[1])
    _run([sys.executable, str(WORKER), *args, str(tmp_path / "single"), "4", str(chunk)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
          *args, str(tmp_path / "dist"), "2", str(chunk)])
    single, two = read_log(tmp_path / "single"), read_log(tmp_path / "dist")
    assert [r["step"] for r in two] == [1, 2, 3]
    assert all(r["queries"] == 4 and r["passages"] == 12 for r in two + single)
    for k, scale in (("loss", 1), ("ri_mean", 1), ("ri_max", 1), ("grad_norm", 2), ("lr", 1)):
        a, b = torch.tensor([r[k] for r in single]), torch.tensor([r[k] * scale for r in two])
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), (k, a, b)
    assert [r["used_ri"] for r in two] == [False, True, True]
    w1 = load_file(str(checkpoints(tmp_path / "single")[-1] / "trainable.safetensors"))
    w2 = load_file(str(checkpoints(tmp_path / "dist")[-1] / "trainable.safetensors"))
    assert w1.keys() == w2.keys() and len(w1) > 10
    start = load_file(str(next(model.glob("*.safetensors"))))
    moved = 0
    for n in w1:
        # Adam divides by sqrt(v): float-rounding differences in near-zero gradients move a few weights by << lr (1e-3)
        assert torch.allclose(w1[n], w2[n], atol=1e-4), (n, (w1[n] - w2[n]).abs().max())
        moved += int(not torch.allclose(w1[n], start.get(n, start.get("model." + n, w1[n]))))
    assert moved > 0


def test_two_process_resume_equals_uninterrupted(tmp_path):
    """Interrupted after step 2 and resumed, a 2-rank LoRA run with dropout equals an uninterrupted one: each rank's RNG
    (its own dropout stream) and the optimiser come back through `torch.load(weights_only=True)` (no pickled objects)."""
    args = training_set(tmp_path)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), *args]
    lora = "embedder.lora={r: 4, alpha: 8, dropout: 0.1}"
    _run(launch + [str(tmp_path / "full"), "2", "0", lora])
    _run(launch + [str(tmp_path / "part"), "2", "0", lora, "stop_at=2"])
    cp = checkpoints(tmp_path / "part")[-1]
    assert cp.name == "step-2" and {p.name for p in cp.glob("rng-rank*.pt")} == {"rng-rank0.pt", "rng-rank1.pt"}
    for f in ("rng-rank0.pt", "rng-rank1.pt", "optimizer.pt"): torch.load(cp / f, weights_only=True)
    _run(launch + [str(tmp_path / "part"), "2", "0", lora])
    full, resumed = read_log(tmp_path / "full"), read_log(tmp_path / "part")
    assert [r["step"] for r in resumed] == [1, 2, 3]
    for k in ("loss", "ri_mean", "ri_max", "grad_norm", "lr"):
        a, b = torch.tensor([r[k] for r in full]), torch.tensor([r[k] for r in resumed])
        assert torch.equal(a, b), (k, a, b)
