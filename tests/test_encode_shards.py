"""`reasonembed encode --shard I/N` on two "machines" (two processes sharing a cache folder), then `reasonembed eval`
with `cache_only: true`: the evaluation encodes nothing and gives what an unsharded evaluation gives, bit for bit."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np

from reasonembed.testing import write_bright_fixture


def _reasonembed(*args, cwd):
    exe = Path(sys.executable).parent / "reasonembed"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "reasonembed.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REASONEMBED_LOGLEVEL": "INFO"}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def _ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def test_two_shards_then_eval_encodes_nothing(tmp_path):
    fx = write_bright_fixture(tmp_path / "bright")
    cfg = tmp_path / "eval.yaml"                 # one file for the encode jobs and the evaluation
    cfg.write_text(f"model: minilm\ndata_dir: {fx}\ntasks: [biology, leetcode]\nquery_max_len: 64\npassage_max_len: 128\n"
                   f"cache_dir: {tmp_path / 'shared'}\ncache_shard_size: 3\nshow_progress: false\n")

    r0 = _ok(_reasonembed("encode", "--config", str(cfg), "--shard", "0/2", cwd=tmp_path))
    assert "biology: shard 0/2:" in r0.stdout and "leetcode: shard 0/2:" in r0.stdout, r0.stdout
    # before job 1 has run, a cache-only evaluation stops and names it (so cache_only below is not vacuous)
    early = _reasonembed("eval", "--config", str(cfg), "--set", "cache_only=true", f"output_dir={tmp_path / 'early'}", cwd=tmp_path)
    assert early.returncode == 2, early.stderr[-3000:]
    assert "corpus embeddings incomplete" in early.stderr and "shard 1/2 (never started)" in early.stderr, early.stderr[-3000:]

    r1 = _ok(_reasonembed("encode", "--config", str(cfg), "--shard", "1/2", cwd=tmp_path))
    assert r1.stdout.count("corpus complete") == 2, r1.stdout
    # the two jobs together encoded every row of both corpora (8 documents each, cache files of 3 rows) exactly once
    encoded = [int(line.split(" encoded now")[0].rsplit(", ", 1)[1]) for r in (r0, r1) for line in r.stdout.splitlines()
               if " encoded now" in line]
    assert sum(encoded) == 16 and all(0 < e < 8 for e in encoded), encoded
    parts = {p.relative_to(tmp_path): np.load(p) for p in (tmp_path / "shared").glob("*/shard-*.npy")}
    assert len(parts) == 6, sorted(parts)                          # 3 files per corpus, nothing joined yet

    ev = _ok(_reasonembed("eval", "--config", str(cfg), "--set", "cache_only=true", f"output_dir={tmp_path / 'sharded'}",
                          cwd=tmp_path))
    # nothing encoded: cache_only cannot encode, and the log says so per corpus; the job files were joined and removed
    assert ev.stderr.count("joined 3 cache file(s); 0 of 8 rows encoded here") == 2, ev.stderr[-3000:]
    assert "encoding cache file" not in ev.stderr and "re-encoding" not in ev.stderr, ev.stderr[-3000:]
    assert not list((tmp_path / "shared").glob("*/shard-*.npy")) and not list((tmp_path / "shared").glob("*/encode-*"))
    finals = sorted((tmp_path / "shared").glob("*/embeddings.npy"))
    assert len(finals) == 2

    un = _ok(_reasonembed("eval", "--config", str(cfg), "--set", f"cache_dir={tmp_path / 'unsharded'}",
                          f"output_dir={tmp_path / 'unsharded-out'}", cwd=tmp_path))
    assert "joined" not in un.stderr                               # one process encoded everything itself
    a = json.loads((tmp_path / "sharded" / "results.json").read_text())
    b = json.loads((tmp_path / "unsharded-out" / "results.json").read_text())
    assert list(a["tasks"]) == ["biology", "leetcode"]
    assert {t: s["mean"] for t, s in a["tasks"].items()} == {t: s["mean"] for t, s in b["tasks"].items()}
    assert a["average"] == b["average"] and a["tasks"]["biology"]["mean"]["ndcg_cut_10"] > 0.5
    for task in ("biology", "leetcode"):                           # same runs, score for score (repr of each float)
        assert (tmp_path / "sharded" / "runs" / f"{task}.trec").read_text() == \
               (tmp_path / "unsharded-out" / "runs" / f"{task}.trec").read_text()
    for f in finals:                                               # the same corpus embeddings, bit for bit (float16)
        same = tmp_path / "unsharded" / f.parent.name / "embeddings.npy"
        e, u = np.load(f), np.load(same)
        assert e.dtype == np.float16 and np.array_equal(e, u)
        joined = np.concatenate([parts[p] for p in sorted(parts) if p.parent == f.parent.relative_to(tmp_path)])
        assert np.array_equal(e, joined)                           # exactly the jobs' files, joined
