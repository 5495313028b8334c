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


def test_offline_dataset_loads_from_an_installed_wheel(tmp_path):
    "theoremqa-mini ships in the wheel and loads from an installed copy, not only from the source tree."
    import subprocess, sys
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(wheels.glob("reasonembed-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True)
    code = ("import reasonembed, pathlib; from reasonembed.hub import resolve_dataset; from reasonembed.prepare import PrepareConfig, load_labelled\n"
            f"assert pathlib.Path(reasonembed.__file__).is_relative_to({str(site)!r}), reasonembed.__file__\n"
            "folder = pathlib.Path(resolve_dataset('theoremqa-mini'))\n"
            f"assert folder.is_relative_to({str(site)!r}) and (folder / 'LICENSE').exists(), folder\n"
            "t = load_labelled(PrepareConfig(source='theoremqa-mini'))\n"
            "print(len(t.docs), len(t.queries), sum(len(g) for g in t.qrels.values()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["354", "376", "376"]


def test_readme_is_the_index_notebook_rendered():
    "nbs/index.ipynb is the README's source (nbdev's readme_nb): `make readme` writes README.md from it."
    import importlib.util
    spec = importlib.util.spec_from_file_location("render_readme", ROOT / ".ci" / "render_readme.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    assert (ROOT / "README.md").read_text() == mod.render(), "README.md differs from nbs/index.ipynb: run `make readme`"
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert cfg["readme_nb"] == "index.ipynb"
