#!/usr/bin/env python3
"""README.md from nbs/index.ipynb, the README's source (nbdev's `readme_nb`): markdown cells as they are, code cells as
Python blocks, `#| hide` cells and outputs left out. `nbdev-readme` does the same through quarto, which this project's
machines cannot install; tests/test_package.py checks that README.md is this rendering.

usage: python .ci/render_readme.py [--check]"""
import json, pathlib, re, sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def render(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    parts = []
    for c in json.loads(pathlib.Path(nb_path).read_text())["cells"]:
        src = "".join(c["source"]).strip("\n")
        if not src or src.startswith("#| hide") or c["cell_type"] == "raw": continue
        parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
    # links from the notebook folder become links from the top of the checkout
    text = "\n\n".join(parts).replace("](../", "](")
    return re.sub(r"\]\(([\w-]+\.ipynb)\)", r"](nbs/\1)", text) + "\n"      # notebooks: beside index.ipynb


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        ok = (ROOT / "README.md").read_text() == text
        print("README.md is in sync with nbs/index.ipynb" if ok else "README.md differs from nbs/index.ipynb: run `make readme`")
        sys.exit(0 if ok else 1)
    (ROOT / "README.md").write_text(text)
    print(f"wrote README.md ({len(text.split())} words)")
