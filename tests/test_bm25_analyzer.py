"""Our Lucene English analysis (`reasonembed.bm25.analyze`) against pyserini's, the analyzer of BRIGHT's official BM25.

The default test needs no Java: pyserini's token streams of the test fixtures, hand-written probes, the pydoc corpus,
theoremqa-mini and seeded random strings are stored in `bm25_assets/pyserini_tokens.jsonl.gz` (written by
`bench/bm25_pyserini.py`, whose first line names the pyserini, Lucene and Java versions). The `pyserini`-marked test
analyses texts live: with pyserini importable here, or through the interpreter named by `REASONEMBED_PYSERINI_PYTHON`
(default `.venv-pyserini/bin/python` when it exists); it is skipped otherwise."""
import gzip, json, os, random, subprocess, sys
from pathlib import Path

import pytest

from reasonembed.bm25 import _LUCENE_CLASSES, analyze

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "bm25_assets" / "pyserini_tokens.jsonl.gz"


def _golden() -> tuple[dict, list[dict]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as f:
        header, *rows = [json.loads(line) for line in f]
    return header, rows


def _first_difference(ours: list[str], theirs: list[str]) -> str:
    i = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"token {i}: ours {ours[i:i + 3]!r}, pyserini {theirs[i:i + 3]!r}"


def test_golden_file():
    header, rows = _golden()
    assert header["pyserini"] and header["lucene"] and header["java"]
    assert header["texts"] == len(rows) == len({r["id"] for r in rows})
    assert {"fixture", "probe", "pydoc", "fuzz"} <= {r["source"] for r in rows}
    assert sum(len(r["tokens"]) for r in rows) > 100_000


def test_analyzer_equals_pyserini_golden():
    header, rows = _golden()
    bad = [(r["id"], _first_difference(ours, r["tokens"])) for r in rows if (ours := analyze(r["text"])) != r["tokens"]]
    assert not bad, (f"{len(bad)} of {len(rows)} texts analysed differently from pyserini {header['pyserini']} "
                     f"(Lucene {header['lucene']}); first: {bad[:5]}")


# ------------------------------------------------------------------ live
_PYSERINI = """
import json, sys
from pyserini.analysis import Analyzer, get_lucene_analyzer
a = Analyzer(get_lucene_analyzer())
print(json.dumps([list(a.analyze(t)) for t in json.load(sys.stdin)]))
"""


def _pyserini_tokens(texts: list[str]) -> list[list[str]]:
    "pyserini's token streams: in this process if it has pyserini, else in `REASONEMBED_PYSERINI_PYTHON`."
    try:
        from pyserini.analysis import Analyzer, get_lucene_analyzer
    except ImportError:
        named = os.environ.get("REASONEMBED_PYSERINI_PYTHON")
        python = named or str(ROOT / ".venv-pyserini" / "bin" / "python")
        if not Path(python).exists():
            pytest.skip("pyserini is not importable (set REASONEMBED_PYSERINI_PYTHON to a Python that has it)")
        r = subprocess.run([python, "-c", _PYSERINI], input=json.dumps(texts), capture_output=True, text=True)
        if r.returncode:
            (pytest.fail if named else pytest.skip)(f"{python} could not run pyserini: {r.stderr[-1500:]}")
        return json.loads(r.stdout)
    a = Analyzer(get_lucene_analyzer())
    return [list(a.analyze(t)) for t in texts]


def _random_texts(n: int, seed: int = 7) -> list[str]:
    "Seeded strings of ASCII and of members of Lucene's character classes (the tokenizer's hard cases)."
    rng = random.Random(seed)
    ranges = [[tuple(int(x, 16) for x in (r.split("-") * 2)[:2]) for r in line.split()[1:]]
              for line in _LUCENE_CLASSES.strip().splitlines()]
    def char():
        if rng.random() < 0.35: return rng.choice("abcXYZ019 .,:;'\"_-#*s")
        a, b = rng.choice(rng.choice(ranges)); return chr(rng.randint(a, b))
    return ["".join(char() for _ in range(rng.randrange(1, 60 if i % 20 else 400))) for i in range(n)]


@pytest.mark.pyserini
def test_analyzer_equals_pyserini_live():
    texts = ["John's cats are running to the ponies' relational caresses, e.g. at 3.14 or 1,000 (U.S.A.).",
             "state-of-the-art foo@bar.com x86_64 __init__ std::vector \u201csmart\u201d it\u2019s na\u00efve cafe\u0301",
             "a\u30a2 a_\u30a2 \u2605 \u2610 \u039f\u0394\u039f\u03a3 a.\u05d0' \u05d0\u05d1' \u200d\U0001f3fd \U0001d400s",
             "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1fa\U0001f1f8 1\ufe0f\u20e3 #\u20e3 \u24c2abc \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
             "a" * 254 + "'abc " + "_" * 300 + "b " + "\U0001d400" * 200] + _random_texts(300)
    theirs = _pyserini_tokens(texts)
    bad = [(t[:40], _first_difference(o, g)) for t, g in zip(texts, theirs) if (o := analyze(t)) != g]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ from pyserini; first: {bad[:5]}"
