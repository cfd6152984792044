"""The notebooks of ``notebooks/``: jupytext pairs in sync, ``.ipynb`` without outputs, and each
notebook executed top to bottom on the CPU with small parameters.

The percent-format ``.py`` is the source of truth; after editing it, run
``jupytext --sync notebooks/*.py``. Execution runs the ``.py`` through a Jupyter kernel
(nbclient), with the CI values of :data:`CI_PARAMS` injected after the cell tagged
``parameters`` (papermill's convention). Set ``GVC_NOTEBOOK_OUT=DIR`` to keep the executed
notebooks (e.g. to render them with ``jupyter nbconvert --to html``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_quickstart", "02_wan_codec", "03_determinism", "04_eval")

# Small settings that keep all four notebooks within a few minutes on 2 CPU cores.
CI_PARAMS = {
    "01_quickstart": {"FRAMES": 8, "DOWNSCALE": 4, "CONFIG": "gaussian-fast", "K": None, "M": 64},
    "02_wan_codec": {"WAN_WEIGHTS": {"t2v": None, "i2v": None, "flf2v": None}, "DOWNLOAD": False, "FRAMES": 9, "SIZE": (64, 48),
                     "K": 256, "M": 8, "PROMPT": "a rabbit in a meadow"},
    "03_determinism": {"FRAMES": 8, "DOWNSCALE": 4, "K": 256, "M": 4, "PARITY_K": 256,
                       "PARITY_M": 4},
    "04_eval": {"FRAMES": 8, "SIZE": "96x54", "GVC": "gaussian-fast:K=64:M=4,16:gop_frames=8",
                "LPIPS": False},
}
CELL_TIMEOUT_S = 600


def _paths(name: str) -> tuple[Path, Path]:
    return NB_DIR / f"{name}.py", NB_DIR / f"{name}.ipynb"


def test_every_notebook_is_a_pair():
    py = {p.stem for p in NB_DIR.glob("*.py")}
    ipynb = {p.stem for p in NB_DIR.glob("*.ipynb")}
    assert py == ipynb == set(NAMES), (sorted(py), sorted(ipynb))


@pytest.mark.parametrize("name", NAMES)
def test_pair_in_sync(name):
    """The .py equals what jupytext writes from the .ipynb (cells, tags and header)."""
    py, ipynb = _paths(name)
    from_ipynb = jupytext.writes(nbformat.read(ipynb, as_version=4), fmt="py:percent")
    assert from_ipynb == py.read_text(encoding="utf-8"), (
        f"{ipynb.name} and {py.name} differ: edit the .py, then run "
        f"`jupytext --sync notebooks/{py.name}`")


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_has_no_outputs(name):
    nb = nbformat.read(_paths(name)[1], as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{name}.ipynb cell {i} has outputs: strip them (jupytext --sync from the .py)")


def _with_params(nb, params: dict):
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook has exactly one cell tagged 'parameters'"
    src = "# Injected by tests/test_notebooks.py\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)
    return nb


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")       # the kernel inherits the environment
    params = dict(CI_PARAMS[name], OUT_DIR=str(tmp_path / "out"))
    nb = _with_params(jupytext.read(_paths(name)[0]), params)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    print(f"{name}: executed in {seconds:.1f} s")
    keep = os.environ.get("GVC_NOTEBOOK_OUT")
    if keep:
        os.makedirs(keep, exist_ok=True)
        nbformat.write(nb, os.path.join(keep, f"{name}.ipynb"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert images >= 1, f"{name} shows no picture"
    if name == "02_wan_codec":          # all three modes coded and decoded bit-exactly
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []))
        for mode in ("t2v", "i2v", "flf2v"):
            assert f"\n{mode} (wan2.1-{mode}" in "\n" + text and \
                "decoded file == encoder's reconstruction: False" not in text, mode


def test_setup_cells_pin_the_tested_jax_and_the_project_url():
    """Each notebook's Colab setup installs the jax these tests run (jax's extras then pin the
    matching libtpu or CUDA plugin) and clones the URL of setup.cfg, which the README's Colab
    links use too."""
    import configparser
    import re

    import jax

    root = NB_DIR.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    url = cfg["metadata"]["url"]
    path = url.split("github.com/")[1]
    for name in NAMES:
        src = _paths(name)[0].read_text(encoding="utf-8")
        assert f'REPO_URL = "{url}"' in src, name
        assert f'JAX_VERSION = "{jax.__version__}"' in src, (name, jax.__version__)
        assert 'jax_req += f"=={JAX_VERSION}"' in src, name
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/", readme)
    assert links and set(links) == {path}
