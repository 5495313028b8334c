"Real torch.distributed (gloo, 2 CPU processes) checks of reasonembed.loss; the worker is tests/dist_loss_worker.py."
import pathlib, subprocess, sys

WORKER = pathlib.Path(__file__).resolve().parent / "dist_loss_worker.py"


def test_loss_and_gradients_match_single_process_under_gloo():
    res = subprocess.run([sys.executable, str(WORKER), "2"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for r in (0, 1):
        assert f"rank {r} OK" in res.stdout
