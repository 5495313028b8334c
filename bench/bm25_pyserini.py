"""Our Lucene English analysis (`reasonembed.bm25.analyze`) against pyserini's real one, token stream by token stream.

BRIGHT's official BM25 analyses documents and queries with `Analyzer(get_lucene_analyzer())` from pyserini: Lucene's
StandardTokenizer, EnglishPossessiveFilter, LowerCaseFilter, the 33 English stop words and PorterStemFilter, on the
JVM. This script, run with an interpreter that has pyserini (its own venv; Java on PATH or in JAVA_HOME):

1. collects the texts (in a subprocess of `--ours-python`, the project's venv): every text field of the test
   fixtures (`reasonembed.testing`'s BRIGHT and R2MED fixtures), the pydoc corpus (`reasonembed.data.pydoc_corpus()`),
   theoremqa-mini's documents, queries and reasoning texts, the hand-written probes below, and `--golden-fuzz` random
   strings (seeded) over Lucene's character classes; above `--sample` corpus texts, a deterministic sample (smallest
   md5 of source and id) plus every fixture, probe and fuzz text;
2. analyses each with pyserini and writes the golden file (`--write`, gzipped JSONL: a header line naming the
   pyserini / Anserini / Lucene / Java versions, then one `{"source", "id", "text", "tokens"}` line per text);
   `--also PYTHON[:JAVA_HOME]` analyses the same texts with other pyserini installations and records whether their
   streams are identical;
3. analyses the same texts with ours and prints the agreement: texts whose token streams are identical / total,
   tokens that differ, the differing segments by kind and by source; then the same for `--fuzz` further random
   strings (not stored), and whether our character-class table equals the one in Lucene's `StandardTokenizerImpl`.
   The figures also go to `outputs/bench/bm25_pyserini.{json,md}`.

    python3 -m venv .venv-pyserini
    .venv-pyserini/bin/pip install --no-deps pyserini==0.22.1 && .venv-pyserini/bin/pip install pyjnius
    .venv-pyserini/bin/python bench/bm25_pyserini.py             # Java 11+; pyserini >= 0.35 needs Java 21+

`--classes` prints Lucene's character-class table in the layout of `_LUCENE_CLASSES` (nbs/03b_bm25.ipynb);
`--compare FILE` (with the project's venv) only re-checks ours against an existing golden file.
"""
from __future__ import annotations
import argparse, glob, gzip, hashlib, json, os, random, subprocess, sys, tempfile
from collections import Counter, defaultdict
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "bm25_assets" / "pyserini_tokens.jsonl.gz"
OUT = ROOT / "outputs" / "bench"
THEOREMQA = next((p for p in (Path("/work/shared/data/theoremqa-mini"), ROOT / "reasonembed" / "assets" / "theoremqa-mini")
                  if p.exists()), Path("/work/shared/data/theoremqa-mini"))
IMPL = "org.apache.lucene.analysis.standard.StandardTokenizerImpl"

PROBES = [   # the cases of nbs/03b_bm25.ipynb's tests, then edge cases of UAX#29, of the emoji rules and of the filters
    "John's dog isn't running, e.g. at 3.14 or 1,000 (U.S.A.).",
    "state-of-the-art foo@bar.com x86_64 __init__ 3rd v1.2 a1.b std::vector a:b",
    "C++ ___ -- 'quoted' \u201csmart\u201d it\u2019s na\u00efve cafe\u0301",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "x" * 600,
    "",
    "John's cats are running to the ponies' relational caresses",
    "THE DOG'S Bones IS it",
    "it\u2019s O'Neil's U.S. and a's",
    "\u0130stanbul",
    "The Running dogs",
    "cells divide by mitosis; how do cells divide? moon orbit",
    "https://example.com/a/b?c=d&e=f#g www.python.org user.name@mail.example.org",
    "$\\int_{|z| = 1} z^2 \\sin(1/z)\\,dz$ and \\frac{a}{b} = 0.5e-3, x_1, x_{10}, 2^{n-1}",
    "1,000.50 3.14.15 1..2 1.a a.1 a.b.c 1'000 can't won't I'm we're they'd 's 'S",
    "O'NEIL'S DOGS\u2019S CAT\uff07S and \u2018single\u2019 quotes, `backticks` and \"double\"",
    "def f(self, *args, **kwargs): return self._cache[key] if key in self._cache else None  # -> Optional[int]",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe \u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \ud55c\uad6d\uc5b4 \u4e2d\u6587\u5206\u8bcd \u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca\u30fc \uff21\uff22\uff23 \uff11\uff12\uff13",
    "emoji \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1fa\U0001f1f8 \u2764\ufe0f #1 @user",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2009thin\u200bzero-width soft\u00adhyphen",
    "\u2160 \u00bd \u00b2 \u2460 \u2070 \u00b5m \u212b \ufb01nance \u2126",
    "3D 2nd H2O CO2 mp3 e2e 10x 1e10 0x1F 1/2 3:4 50% $5 #hashtag",
    "generalizations oscillators hopefulness relational conditional triplicate electricity",
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with",
    "ponies' Ponies\u2019 boss's bosses' James's  'tis o'clock rock'n'roll",
    "word." + "y" * 300 + " end",
    # cases where the first version (today's Unicode through the `regex` module) differed from pyserini
    "a\u30a2 a_\u30a2 \u30a2a \u2605 \u2610 \u263a \u2654 \u2699 \u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3",
    "a.\u05d0' \u05d0\u05d1' \u05d0\"\u05d1 \u200d\U0001f3fd \u200d\U0001f600 \U0001f600\ufe0f\U000e0067\U000e007f",
    "\u4db6 \U0001fbf1 \u08be \U00011912 \u24c2\u200d\U0001f600 \u24c2abc 1\u20e3x \U0001d400s \U0001d400\U0001d400s",
    "a" * 254 + "'abc " + "a" * 253 + "'abc " + "\U0001d400" * 200 + " " + "1" * 254 + ".5",
]

# One representative code point per class of Lucene's StandardTokenizerImpl, and the symbol the class gets.
CLASS_REPS = {" ": 0x21, "Q": 0x22, "#": 0x23, "'": 0x27, ",": 0x2C, ".": 0x2E, "0": 0x30, ":": 0x3A, "A": 0x61,
              "_": 0x5F, "E": 0x1F600, "x": 0x301, "H": 0x5D0, "N": 0x660, "S": 0xE01, "s": 0xE31, "G": 0x1100,
              "z": 0x200D, "k": 0x20E3, "B": 0x24C2, "C": 0x4E00, "K": 0x30A2, "h": 0x3042, "v": 0xFE0E, "V": 0xFE0F,
              "R": 0x1F1E6, "M": 0x1F3FB, "t": 0xE0020, "T": 0xE007F}

_DUMP_JAVA = """
import java.lang.reflect.Method;
import java.io.PrintWriter;
public class DumpCMap {   // the scanner's character class of every code point, as ranges "start end class"
  public static void main(String[] a) throws Exception {
    Method m = Class.forName("%s").getDeclaredMethod("zzCMap", int.class);
    m.setAccessible(true);
    try (PrintWriter w = new PrintWriter(a[0])) {
      int prev = -1, start = 0;
      for (int cp = 0; cp <= 0x10FFFF; cp++) {
        int k = (Integer) m.invoke(null, cp);
        if (k != prev) { if (prev >= 0) w.println(start + " " + (cp - 1) + " " + prev); prev = k; start = cp; }
      }
      w.println(start + " " + 0x10FFFF + " " + prev);
    }
  }
}
""" % IMPL


# ------------------------------------------------------------------ pyserini side
def anserini_jar() -> str:
    import pyserini
    jars = glob.glob(str(Path(pyserini.__file__).parent / "resources" / "jars" / "anserini-*-fatjar.jar"))
    if os.environ.get("ANSERINI_CLASSPATH"): jars = glob.glob(os.path.join(os.environ["ANSERINI_CLASSPATH"], "anserini-*-fatjar.jar"))
    if not jars: sys.exit("no anserini fat jar found next to pyserini")
    return max(jars, key=os.path.getctime)   # the one pyserini.setup.configure_classpath picks


def lucene_classes() -> str:
    "Lucene's character classes (read from StandardTokenizerImpl with a one-file Java program), one line per symbol."
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "DumpCMap.java", Path(tmp) / "cmap.txt"
        src.write_text(_DUMP_JAVA)
        subprocess.run([java, "-cp", anserini_jar(), str(src), str(out)], check=True)
        rows = [tuple(map(int, l.split())) for l in out.read_text().splitlines()]
    def cls(cp): return next(k for a, b, k in rows if a <= cp <= b)
    label = {}
    for sym, cp in CLASS_REPS.items():
        k = cls(cp)
        if k in label: sys.exit(f"U+{cp:04X} ({sym!r}) shares a class with {label[k]!r}: the grammar needs revisiting")
        label[k] = sym
    if len(label) != len({k for *_, k in rows}): sys.exit("Lucene has a character class without a symbol: revisit the grammar")
    ranges = defaultdict(list)
    for a, b, k in rows:
        if label[k] != " ": ranges[label[k]].append(f"{a:x}" if a == b else f"{a:x}-{b:x}")
    return "".join(f"{s} {' '.join(ranges[s])}\n" for s in CLASS_REPS if s != " ")


def pyserini_analyze(texts: list[str]) -> tuple[list[list[str]], dict]:
    from importlib.metadata import version
    from pyserini.analysis import Analyzer, get_lucene_analyzer
    from jnius import autoclass
    analyzer = Analyzer(get_lucene_analyzer())
    system = autoclass("java.lang.System")
    info = {"pyserini": version("pyserini"), "anserini_jar": Path(anserini_jar()).name,
            "lucene": autoclass("org.apache.lucene.util.Version").LATEST.toString(),
            "java": f"{system.getProperty('java.version')} ({system.getProperty('java.vendor')})",
            "analyzer": "pyserini.analysis.Analyzer(get_lucene_analyzer()): en, porter stemmer, stop words"}
    return [list(analyzer.analyze(t)) for t in texts], info


def fuzz_texts(n: int, seed: int, classes: str) -> list[str]:
    "`n` random strings (seeded): ASCII, members of Lucene's classes, any code point; one in ten 150-700 characters."
    rng = random.Random(seed)
    members = [[tuple(int(x, 16) for x in (r.split("-") * 2)[:2]) for r in line.split()[1:]] for line in classes.splitlines()]
    ascii_ = "abcXYZ019 .,:;'\"_-#*s"
    def char():
        r = rng.random()
        if r < 0.3: return rng.choice(ascii_)
        if r < 0.4:
            cp = rng.randrange(0x80, 0x32000)
            return chr(cp) if not 0xD800 <= cp <= 0xDFFF else "?"
        a, b = rng.choice(rng.choice(members)); return chr(rng.randint(a, b))
    def long_word():   # letters of several classes with connectors: Lucene's 255-character buffer
        pool = "a" * 12 + "\U0001d400" * 3 + "0" * 3 + "\u05d0'._\u0301\u30a2\u0e01" + "s" * 3
        return "".join(rng.choice(pool) if rng.random() < 0.6 else char() for _ in range(rng.randrange(150, 700)))
    return [long_word() if i % 10 == 9 else "".join(char() for _ in range(rng.randrange(1, 40))) for i in range(n)]


# ------------------------------------------------------------------ project side (run by --ours-python)
def _fixture_texts() -> list[dict]:
    "Every text field of the BRIGHT and R2MED fixtures of `reasonembed.testing`."
    import pyarrow.parquet as pq
    from reasonembed.testing import write_bright_fixture, write_r2med_fixture
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_bright_fixture(Path(tmp) / "bright")
        for f in sorted(root.rglob("*.parquet")):
            where = f"bright/{f.parent.name}/{f.name.split('-')[0]}"
            for r in pq.read_table(f).to_pylist():
                for field in ("content", "query", "reasoning"):
                    if r.get(field): out.append({"source": "fixture", "id": f"{where}/{r['id']}/{field}", "text": r[field]})
        root = write_r2med_fixture(Path(tmp) / "r2med")
        for f in sorted(root.rglob("*.jsonl")):
            for line in f.read_text().splitlines():
                r = json.loads(line)
                if "text" in r: out.append({"source": "fixture", "id": f"r2med/{f.parent.name}/{f.stem}/{r['id']}", "text": r["text"]})
    return out


def collect_texts(theoremqa: Path, sample: int) -> list[dict]:
    from reasonembed.data import pydoc_corpus
    texts = _fixture_texts() + [{"source": "probe", "id": f"probe/{i}", "text": t} for i, t in enumerate(PROBES)]
    corpus = [{"source": "pydoc", "id": d.id, "text": d.text} for d in pydoc_corpus()]
    def part(name):   # the shared copy's layout (documents.jsonl) or BRIGHT's (documents/<task>.jsonl)
        return next(iter([theoremqa / f"{name}.jsonl"] if (theoremqa / f"{name}.jsonl").exists() else
                         sorted((theoremqa / name).glob("*.jsonl")) if (theoremqa / name).is_dir() else []), None)
    if part("documents") and part("examples"):
        for line in part("documents").read_text().splitlines():
            r = json.loads(line); corpus.append({"source": "theoremqa:documents", "id": f"theoremqa/{r['id']}", "text": r["content"]})
        for line in part("examples").read_text().splitlines():
            r = json.loads(line)
            corpus.append({"source": "theoremqa:queries", "id": f"theoremqa/{r['id']}/query", "text": r["query"]})
            if r.get("reasoning"):
                corpus.append({"source": "theoremqa:reasoning", "id": f"theoremqa/{r['id']}/reasoning", "text": r["reasoning"]})
    else: print(f"warning: {theoremqa} not found, theoremqa-mini left out", file=sys.stderr)
    if len(corpus) > sample:
        corpus = sorted(corpus, key=lambda r: hashlib.md5(f"{r['source']}\t{r['id']}".encode()).hexdigest())[:sample]
    return texts + corpus


def our_tokens(texts: list[str]) -> list[list[str]]:
    from reasonembed.bm25 import analyze
    return [analyze(t) for t in texts]


def our_classes() -> str:
    import reasonembed.bm25 as bm25
    table = getattr(bm25, "_LUCENE_CLASSES", None)   # None: a version of ours without Lucene's table
    return table.lstrip("\n") if table else None


# ------------------------------------------------------------------ comparison
def _kind(ours: list[str], theirs: list[str]) -> str:
    if not ours: return "pyserini only"
    if not theirs: return "ours only"
    return "split / merge" if len(ours) != len(theirs) else "different token"


def _short(tokens: list[str], n: int = 60) -> str:
    s = ascii(" ".join(tokens))[1:-1]
    return s if len(s) <= n else s[:n - 12] + f"...({len(s)} chars)"


def compare(rows: list[dict], ours: list[list[str]]) -> dict:
    "Agreement of our token streams with the golden ones, with every differing segment."
    same, tok_total, tok_diff = 0, 0, 0
    kinds, segments, by_source, examples = Counter(), Counter(), defaultdict(lambda: [0, 0]), []
    for r, o in zip(rows, ours):
        g = r["tokens"]; tok_total += len(g); by_source[r["source"]][1] += 1
        if o == g:
            same += 1; by_source[r["source"]][0] += 1; continue
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, o, g, autojunk=False).get_opcodes():
            if tag == "equal": continue
            tok_diff += max(i2 - i1, j2 - j1)
            kinds[_kind(o[i1:i2], g[j1:j2])] += 1
            segments[(_short(o[i1:i2]), _short(g[j1:j2]))] += 1
        if len(examples) < 20: examples.append({"source": r["source"], "id": r["id"]})
    return {"texts": len(rows), "identical": same, "tokens": tok_total, "tokens_differing": tok_diff,
            "kinds": dict(kinds), "by_source": {k: {"identical": v[0], "texts": v[1]} for k, v in sorted(by_source.items())},
            "segments": [{"ours": a, "pyserini": b, "count": n} for (a, b), n in segments.most_common(40)],
            "differing_texts": examples}


def report(res: dict, info: dict, title: str = "golden texts") -> str:
    lines = [f"{title}: pyserini {info.get('pyserini')} ({info.get('anserini_jar')}), Lucene {info.get('lucene')}, Java {info.get('java')}",
             f"identical token streams: {res['identical']} / {res['texts']} texts; "
             f"tokens differing: {res['tokens_differing']} of {res['tokens']} (pyserini's count)", "",
             "| source | identical / texts |", "|---|---|"]
    lines += [f"| {k} | {v['identical']} / {v['texts']} |" for k, v in res["by_source"].items()]
    if res["kinds"]:
        lines += ["", "differing segments by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(res["kinds"].items())), "",
                  "| ours | pyserini | count |", "|---|---|---|"]
        lines += [f"| `{s['ours']}` | `{s['pyserini']}` | {s['count']} |" for s in res["segments"]]
    return "\n".join(lines)


def read_golden(path: Path) -> tuple[dict, list[dict]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    return json.loads(lines[0]), [json.loads(l) for l in lines[1:]]


def write_golden(path: Path, header: dict, rows: list[dict]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:   # reproducible bytes
        for obj in [header, *rows]: f.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))


def _worker(python: str, args: list[str], payload=None, java_home: str | None = None):
    "Run this script in another interpreter; JSON in (a temporary file) and JSON out (stdout)."
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if java_home: env["JAVA_HOME"] = java_home
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False)
    try:
        out = subprocess.run([python, __file__, *args, "--_in", f.name], check=True, capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as e:
        sys.exit(f"{python} {' '.join(args)} failed:\n{e.stderr[-3000:]}")
    finally: os.unlink(f.name)
    return json.loads(out.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", type=Path, default=GOLDEN, help="the golden file to write")
    p.add_argument("--ours-python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's interpreter")
    p.add_argument("--theoremqa", type=Path, default=THEOREMQA, help="theoremqa-mini folder (documents.jsonl, examples.jsonl)")
    p.add_argument("--sample", type=int, default=2000, help="at most this many corpus texts (fixtures, probes, fuzz: all)")
    p.add_argument("--golden-fuzz", type=int, default=300, help="random strings stored in the golden file")
    p.add_argument("--fuzz", type=int, default=30000, help="further random strings compared (not stored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--also", nargs="*", default=[], help="other pyserini interpreters, PYTHON or PYTHON:JAVA_HOME")
    p.add_argument("--classes", action="store_true", help="print Lucene's character-class table and stop")
    p.add_argument("--compare", type=Path, help="only compare ours against this golden file (project venv)")
    for w in ("texts", "ours", "ourclasses", "pyserini"): p.add_argument(f"--_{w}", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_in", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    payload = json.loads(a._in.read_text(encoding="utf-8")) if a._in else None
    if a._texts: return print(json.dumps(collect_texts(a.theoremqa, a.sample), ensure_ascii=False))
    if a._ours: return print(json.dumps(our_tokens(payload), ensure_ascii=False))
    if a._ourclasses: return print(json.dumps(our_classes()))
    if a._pyserini:
        toks, info = pyserini_analyze(payload); return print(json.dumps({"info": info, "tokens": toks}, ensure_ascii=False))
    if a.classes: return print(lucene_classes(), end="")
    if a.compare:
        header, rows = read_golden(a.compare)
        return print(report(compare(rows, our_tokens([r["text"] for r in rows])), header))

    classes = lucene_classes()
    rows = _worker(a.ours_python, ["--_texts", "--theoremqa", str(a.theoremqa), "--sample", str(a.sample)])
    rows += [{"source": "fuzz", "id": f"fuzz/{i}", "text": t} for i, t in enumerate(fuzz_texts(a.golden_fuzz, a.seed, classes))]
    texts = [r["text"] for r in rows]
    tokens, info = pyserini_analyze(texts)
    for r, t in zip(rows, tokens): r["tokens"] = t
    also = []
    for spec in a.also:
        py, _, jh = spec.partition(":")
        res = _worker(py, ["--_pyserini"], texts, jh or None)
        also.append({**{k: res["info"][k] for k in ("pyserini", "anserini_jar", "lucene", "java")},
                     "identical_texts": sum(x == y for x, y in zip(res["tokens"], tokens)), "texts": len(texts)})
    header = {"golden": "pyserini token streams", **info, "texts": len(rows),
              "sources": dict(sorted(Counter(r["source"] for r in rows).items())),
              "sample": f"corpus texts: all (at most {a.sample}; above that the smallest md5 of source and id); "
                        f"fixture, probe and fuzz texts: all; fuzz: bench/bm25_pyserini.py fuzz_texts(seed={a.seed})",
              "also_checked": also}
    write_golden(a.write, header, rows)
    res = compare(rows, _worker(a.ours_python, ["--_ours"], texts))
    fz = fuzz_texts(a.fuzz, a.seed + 1, classes)
    fz_tokens, _ = pyserini_analyze(fz)
    fz_res = compare([{"source": "fuzz", "id": f"fuzz/{i}", "tokens": t} for i, t in enumerate(fz_tokens)],
                     _worker(a.ours_python, ["--_ours"], fz))
    ours_cls = _worker(a.ours_python, ["--_ourclasses"])
    text = "\n\n".join([
        f"golden file: {a.write} ({a.write.stat().st_size:,} bytes, {len(rows)} texts)",
        report(res, info),
        "\n".join(f"also: pyserini {x['pyserini']} ({x['anserini_jar']}), Lucene {x['lucene']}, Java {x['java']}: "
                  f"identical to the golden streams on {x['identical_texts']} / {x['texts']} texts" for x in also) or "also: -",
        report(fz_res, info, f"{a.fuzz} further random strings (seed {a.seed + 1})"),
        "character classes: " + ("ours identical to Lucene's" if ours_cls == classes else
                                 "ours have no table" if ours_cls is None else "ours DIFFERENT from Lucene's (see --classes)")])
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bm25_pyserini.json").write_text(json.dumps({"pyserini": info, "also": also, "golden": res, "fuzz": fz_res,
                                                        "classes_identical": ours_cls == classes}, indent=1, ensure_ascii=False))
    (OUT / "bm25_pyserini.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
