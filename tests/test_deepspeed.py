"""DeepSpeed ZeRO-1 through `reasonembed.training.train`, on this CPU in one process (gloo): the same training as without
DeepSpeed, a resumed run equal to an uninterrupted one, and GradCache under DeepSpeed equal to the plain step.
Each run is a subprocess (tests/train_worker.py), as DeepSpeed sets up a process group."""
import pathlib, subprocess, sys

import pytest
import torch

from train_worker import training_set   # tests/train_worker.py: the data and model these tests share
from reasonembed.distributed import checkpoints
from reasonembed.training import read_log

pytest.importorskip("deepspeed")
ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "train_worker.py"
ZERO1 = str(ROOT / "configs" / "zero1.json")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ds")
    return tmp, training_set(tmp)


def _train(args, out, chunk=0, *sets):
    res = subprocess.run([sys.executable, str(WORKER), *args, str(out), "4", str(chunk), "max_steps=4", "save_every=2",
                          "max_grad_norm=1.0", *sets], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return read_log(out)


def _same(a, b, keys=("loss", "ri_mean", "grad_norm", "lr"), tol=1e-5):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for k in keys:
        x, y = torch.tensor([r[k] for r in a]), torch.tensor([r[k] for r in b])
        assert torch.allclose(x, y, rtol=tol, atol=tol), (k, x, y)


def test_deepspeed_trains_like_the_plain_loop(setup):
    tmp, args = setup
    plain = _train(args, tmp / "plain")
    ds = _train(args, tmp / "ds", 0, f"deepspeed={ZERO1}")
    _same(plain, ds)
    assert (checkpoints(tmp / "ds")[-1] / "deepspeed").is_dir() and not (checkpoints(tmp / "ds")[-1] / "optimizer.pt").exists()


def test_deepspeed_resumes_exactly(setup):
    tmp, args = setup
    full = _train(args, tmp / "ds-full", 0, f"deepspeed={ZERO1}")
    _train(args, tmp / "ds-part", 0, f"deepspeed={ZERO1}", "stop_at=2")
    assert [r["step"] for r in read_log(tmp / "ds-part")] == [1, 2]
    _same(full, _train(args, tmp / "ds-part", 0, f"deepspeed={ZERO1}"), tol=1e-6)
    # a DeepSpeed checkpoint is not resumed without DeepSpeed
    res = subprocess.run([sys.executable, str(WORKER), *args, str(tmp / "ds-part"), "4", "0", "max_steps=6", "save_every=2",
                          "max_grad_norm=1.0"], capture_output=True, text=True, timeout=600)
    assert res.returncode != 0 and "written by a DeepSpeed run" in res.stderr


def test_gradcache_under_deepspeed(setup):
    tmp, args = setup
    ds = _train(args, tmp / "ds-nochunk", 0, f"deepspeed={ZERO1}")
    chunked = _train(args, tmp / "ds-chunk", 2, f"deepspeed={ZERO1}")
    _same(ds, chunked, tol=1e-4)
