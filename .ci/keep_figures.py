"""Keep only the figures in the given notebooks' outputs (after `nbdev-test --save` executed them).

A figure cell keeps its PNG (and nothing else: no "<Figure ...>" text, no log lines); every other output is dropped, so
the notebooks stay clean except for the pictures a reader wants to see on the repository page (CONTRIBUTING.md).
Usage: python .ci/keep_figures.py nbs/01_data.ipynb ...   (then nbdev-clean; `make figures` runs the three steps)
"""
import json, sys
from pathlib import Path


def keep_figures(path: Path) -> int:
    nb = json.loads(path.read_text(encoding="utf-8"))
    kept = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code": continue
        outs = []
        for o in cell.get("outputs", []):
            png = o.get("data", {}).get("image/png") if o.get("output_type") in ("display_data", "execute_result") else None
            if png: outs.append({"output_type": "display_data", "data": {"image/png": png}, "metadata": {}})
        cell["outputs"], kept = outs, kept + len(outs)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return kept


if __name__ == "__main__":
    for f in sys.argv[1:]:
        print(f"{f}: {keep_figures(Path(f))} figure(s) kept")
