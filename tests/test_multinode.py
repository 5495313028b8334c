"""Training across nodes, on this CPU (gloo, 127.0.0.1): 2 "nodes" x 1 process (two torchrun launches with
`--nnodes 2 --node_rank 0/1`, built by `reasonembed.distributed.torchrun_args`, a static rendezvous) and 2 processes started
the way SLURM's `srun` starts them (no torchrun: only SLURM_* variables, read by `init_distributed`) take the same steps
as 1 node x 2 processes: the same per-step losses, RI statistics, gradient norms and learning rates, each step over the
global batch of 4 queries (so the ranks really trained together), and the same final weights.
Worker: tests/train_worker.py (as in tests/test_training_distributed.py)."""
import os, pathlib, socket, subprocess, sys

import pytest
import torch
from safetensors.torch import load_file

from train_worker import training_set   # tests/train_worker.py: the data and model these tests share
from reasonembed.distributed import checkpoints, torchrun_args
from reasonembed.training import read_log

WORKER = pathlib.Path(__file__).resolve().parent / "train_worker.py"
_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _clean_env(**extra) -> dict:
    "This environment without any launcher's variables (the test may itself run under SLURM or torchrun), one thread."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_")) and k not in _LAUNCH_VARS}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run_together(cmds_envs: list, logs: pathlib.Path, timeout: float = 300):
    "Start every (cmd, env) at once (the processes of one job wait for each other) and wait for all; any failure fails the test."
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for k, (cmd, env) in enumerate(cmds_envs):
            out = open(logs / f"proc{k}.log", "w")
            procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT), out))
        for p, _ in procs: p.wait(timeout=timeout)
    finally:
        for p, out in procs:
            if p.poll() is None: p.kill(); p.wait()
            out.close()
    for k, (p, _) in enumerate(procs):
        assert p.returncode == 0, f"process {k} exited with {p.returncode}:\n" + (logs / f"proc{k}.log").read_text()[-5000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multinode")
    data, model = training_set(tmp)
    worker = lambda out: [str(WORKER), data, model, str(tmp / out), "2", "0"]   # 2 queries per rank
    # 1 node x 2 processes (the reference; tests/test_training_distributed.py shows it equals one process on batch 4)
    _run_together([(torchrun_args(2) + worker("one-node"), _clean_env())], tmp / "logs-one-node")
    # 2 nodes x 1 process: node 0 and node 1 meet at node 0's address and port
    port = _free_port()
    _run_together([(torchrun_args(1, 2, k, "127.0.0.1", port) + worker("two-nodes"), _clean_env()) for k in (0, 1)],
                  tmp / "logs-two-nodes")
    # srun without torchrun: 2 tasks on 2 "nodes" (one each); MASTER_ADDR from the node list, MASTER_PORT set by the job
    port = _free_port()
    slurm = lambda k: _clean_env(SLURM_JOB_ID="4242", SLURM_STEP_ID="0", SLURM_PROCID=str(k), SLURM_LOCALID="0", SLURM_NODEID=str(k),
                                 SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_NODELIST="127.0.0.1,localhost",
                                 MASTER_PORT=str(port))
    _run_together([([sys.executable] + worker("slurm"), slurm(k)) for k in (0, 1)], tmp / "logs-slurm")
    return tmp


def _same_run(a: pathlib.Path, b: pathlib.Path):
    ra, rb = read_log(a), read_log(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb] == [1, 2, 3]
    assert all(r["queries"] == 4 and r["passages"] == 12 for r in ra + rb)       # the global batch: both ranks took part
    for k in ("loss", "ri_mean", "ri_max", "grad_norm", "lr"):
        x, y = torch.tensor([r[k] for r in ra]), torch.tensor([r[k] for r in rb])
        assert torch.allclose(x, y, rtol=1e-6, atol=1e-6), (k, x, y)
    wa = load_file(str(checkpoints(a)[-1] / "trainable.safetensors"))
    wb = load_file(str(checkpoints(b)[-1] / "trainable.safetensors"))
    assert wa.keys() == wb.keys() and len(wa) > 10
    for n in wa: assert torch.allclose(wa[n], wb[n], atol=1e-6), (n, (wa[n] - wb[n]).abs().max())


def test_two_nodes_equal_one_node(runs):
    _same_run(runs / "one-node", runs / "two-nodes")


def test_srun_without_torchrun_equals_torchrun(runs):
    _same_run(runs / "one-node", runs / "slurm")
    assert "SLURM step of 2 tasks; rendezvous at 127.0.0.1:" in (runs / "logs-slurm" / "proc0.log").read_text()
