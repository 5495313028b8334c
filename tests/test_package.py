"Checks that span notebooks: project layout, exported modules, notebook hygiene."
import importlib, json, pathlib, tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NBS = sorted((ROOT / "nbs").glob("[0-9][0-9]_*.ipynb"))


def _cells(nb):
    return json.loads(nb.read_text())["cells"]


def test_nbdev_settings():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert cfg["allowed_cell_metadata_keys"] == ["tags"], "papermill's `parameters` tag must survive nbdev-clean"
    assert {"slow", "cuda", "vllm"} <= set(cfg["tst_flags"].split())


def test_library_notebooks_export_importable_modules():
    libs = [nb for nb in NBS if int(nb.name[:2]) < 20]
    assert libs, "no library notebooks found"
    for nb in libs:
        src = "\n".join("".join(c["source"]) for c in _cells(nb) if c["cell_type"] == "code")
        assert "#| default_exp" in src, f"{nb.name}: library notebook without default_exp"
        mod = src.split("#| default_exp", 1)[1].split()[0]
        importlib.import_module(f"reasonembed.{mod}")


def test_run_notebooks_have_one_parameters_cell_and_export_nothing():
    for nb in [nb for nb in NBS if int(nb.name[:2]) >= 20]:
        cells = _cells(nb)
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name}: expected one `parameters` cell, found {len(tagged)}"
        src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "#| export" not in src and "#| default_exp" not in src, f"{nb.name}: run notebooks export nothing"


def test_notebooks_are_clean():
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for c in _cells(nb):
            if c["cell_type"] == "code":
                assert c.get("execution_count") is None, f"{nb.name}: execution counts left in (run nbdev-clean)"
            assert set(c.get("metadata", {})) <= {"tags"}, f"{nb.name}: cell metadata beyond tags"


def test_version_matches_pyproject_dynamic():
    import reasonembed
    assert reasonembed.__version__.count(".") == 2
