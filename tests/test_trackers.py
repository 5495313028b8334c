"""Experiment trackers (`TrainConfig.report_to`) on a short real training run, offline, each read back through its own
reader: TensorBoard (the event file), trackio (local mode), W&B (offline mode: the run's .wandb file), MLflow (a file
store). A tracker runs where its extra is installed (`pip install 'reasonembed[tensorboard]'`, `[trackio]`, `[wandb]`,
`[mlflow]`) and is skipped otherwise. Each training is a subprocess: the trackers' global state and the environment
variables they read stay out of this process."""
import glob, json, math, os, pathlib, struct, subprocess, sys

import pytest

from reasonembed.training import read_log

TRAIN = """
import json, sys
from reasonembed.config import load_config
from reasonembed.training import TrainConfig, train
train(load_config(TrainConfig, base=json.loads(sys.argv[1])))
"""
TRACKED = ("loss", "ri_min", "ri_max", "ri_mean", "ri_median", "ri_fixed", "lr", "grad_norm", "tokens_per_s", "peak_memory_gb")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "12 rows, every third with q' = q (RI fixed at 1), and a tiny decoder."
    from reasonembed.batching import demo_samples
    from reasonembed.data import write_jsonl
    from reasonembed.testing import make_tiny_decoder
    root = tmp_path_factory.mktemp("trackers")
    samples = demo_samples(12, n_neg=2, seed=2)
    for s in samples[::3]: s.reasoning_query = s.query
    write_jsonl(root / "train.jsonl", samples)
    return root / "train.jsonl", make_tiny_decoder(root / "tiny", texts=[s.pos[0] for s in samples])


def _train(tmp_path, data, tracker, env=None, **kw):
    "A 3-step run reporting to `tracker`, in `<tmp>/runs/demo-1/train_ri` (run name 'demo-1/train_ri'); `(folder, JSONL log)`."
    out = tmp_path / "runs" / "demo-1" / "train_ri"
    cfg = dict(data=[str(data[0])], output_dir=str(out), max_steps=3, save_every=0, save_model=False, plot=False,
               progress=False, log_every=0, num_workers=0, report_to=[tracker], lr=1e-3,
               embedder=dict(model=str(data[1]), query_max_len=32, passage_max_len=48, device="cpu"),
               batching=dict(batch_size=4, group_size=2), loss=dict(mode="ri", ri_start_step=1), **kw)
    res = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(cfg)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return out, read_log(out)


def _check(rows, logged: dict):
    "`logged[key] = [(step, value), ...]` holds every step of the JSONL log, with its value, for each tracked key."
    assert [r["step"] for r in rows] == [1, 2, 3] and sum(r["ri_fixed"] for r in rows) > 0
    for k in TRACKED:
        got = logged[f"train/{k}"]
        assert [s for s, _ in got] == [r["step"] for r in rows], (k, got)
        assert all(math.isclose(v, r[k], rel_tol=1e-5, abs_tol=1e-6) for (_, v), r in zip(got, rows)), (k, got, [r[k] for r in rows])


def test_tensorboard_event_file_holds_every_logged_step(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _train(tmp_path, data, "tensorboard", stop_at=2)                       # interrupted, then resumed: no step twice
    out, rows = _train(tmp_path, data, "tensorboard")
    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    _check(rows, {k: [(e.step, e.value) for e in ea.Scalars(k)] for k in ea.Tags()["scalars"]})
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "demo-1/train_ri" in text and "temperature: 0.02" in text        # the run name; the resolved config (decoder τ)
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    start = HParamsPluginData.FromString(ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["loss.temperature"].number_value == 0.02 and start.hparams["loss.mode"].string_value == "ri"


def test_trackio_local(tmp_path, data):
    pytest.importorskip("trackio")
    env = {"TRACKIO_DIR": str(tmp_path / "trackio"), "TRACKIO_PROJECT": "re-test"}
    _, rows = _train(tmp_path, data, "trackio", env=env)
    read = ("import json, trackio; logs = trackio.SQLiteStorage.get_logs('re-test', 'demo-1/train_ri'); "
            "cfg = trackio.SQLiteStorage.get_run_config('re-test', 'demo-1/train_ri'); print(json.dumps([logs, cfg]))")
    res = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert res.returncode == 0, res.stderr[-3000:]
    logs, cfg = json.loads(res.stdout.strip().splitlines()[-1])
    _check(rows, {k: [(l["step"], l[k]) for l in logs if k in l] for k in {k for l in logs for k in l}})
    assert cfg["loss.temperature"] == 0.02 and cfg["report_to"] == '["trackio"]'


def _wandb_records(path):
    "The records of a .wandb file (W&B's LevelDB-style log: a 7-byte header, 32 KiB blocks, 7-byte record headers)."
    b, pos, out, buf = pathlib.Path(path).read_bytes(), 7, [], b""
    while pos + 7 <= len(b):
        if 32768 - pos % 32768 < 7: pos += 32768 - pos % 32768; continue
        _, n, kind = struct.unpack("<IHB", b[pos:pos + 7]); pos += 7
        if kind == 0 and n == 0: break
        data, pos = b[pos:pos + n], pos + n
        if kind == 1: out.append(data)
        elif kind == 2: buf = data
        elif kind == 3: buf += data
        elif kind == 4: out.append(buf + data); buf = b""
    return out


def test_wandb_offline(tmp_path, data):
    pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2 as pb
    out, rows = _train(tmp_path, data, "wandb", env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    files = glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 1, files
    logged, config = {}, {}
    for d in _wandb_records(files[0]):
        r = pb.Record(); r.ParseFromString(d)
        kind = r.WhichOneof("record_type")
        if kind == "history":
            items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            for k, v in items.items(): logged.setdefault(k, []).append((items["_step"], v))
        elif kind in ("config", "run"):
            for i in (r.config.update if kind == "config" else r.run.config.update): config[i.key] = json.loads(i.value_json)
    _check(rows, logged)
    assert config["loss"]["temperature"] == 0.02


def test_mlflow_file_store(tmp_path, data, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out, rows = _train(tmp_path, data, "mlflow", env={"MLFLOW_EXPERIMENT_NAME": "re-test"})
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("re-test").experiment_id])
    assert run.info.run_name == "demo-1/train_ri" and run.info.status == "FINISHED"
    _check(rows, {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in run.data.metrics})
    assert run.data.params["loss.temperature"] == "0.02"
