"""``python -m gvc_jax.testing.random_wan``: the folders it writes load through the library, and
it refuses, fails and stops in one line without leaving anything behind (docs/testing.md)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gvc_jax.testing import random_wan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(capsys, *argv):
    rc = random_wan.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _load(kind: str, folder: str):
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.codec.params import CodecParams

    params = CodecParams(K=64, M=2, steps=2, sde_steps=1, dtype="float32")
    return load_model(f"wan2.1-{kind}", folder, Prompt("a fox"), params, cache_dir=False)


@pytest.mark.parametrize("layout,kind", [("official", "t2v"), ("diffusers", "i2v")])
def test_tiny_folder_loads_through_the_library(layout, kind, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "wan"
    rc, text, err = _run(capsys, out, "--size", "tiny", "--layout", layout, "--kind", kind,
                         "--seed", "2")
    assert rc == 0, err
    assert os.listdir(tmp_path) == ["wan"]                  # no temporary folder left beside it
    # Every weight file is listed with a real unit: the tiny DiT has ~150 K parameters.
    dit = "diffusion_pytorch_model.safetensors"
    dit = dit if layout == "official" else "transformer/" + dit
    m = re.search(rf"  {re.escape(dit)}: \d+ tensors, ([\d.]+) K params", text)
    assert m and 100 < float(m.group(1)) < 300, text
    assert " 0 params" not in text and "0.000" not in text
    assert f"--config wan2.1-{kind} --weights {out}" in text
    model = _load(kind, str(out))
    assert model.cond is not None


def test_refuses_a_non_empty_folder_and_bad_options(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, text, err = _run(capsys, out)
    assert rc == 2 and text == ""
    assert err.count("\n") == 1 and err.startswith(f"gvc: error: {out}: exists and is not an "
                                                   "empty folder")
    assert os.listdir(out) == ["keep.txt"]
    for argv, msg in (([tmp_path / "a", "--variant", "t2v-14b"], "--variant is for --size full"),
                      ([tmp_path / "b", "--size", "full", "--variant", "t2v-2b"],
                       "not a released t2v model"),
                      ([tmp_path / "c", "--max-shard-gb", "1"], "are for --size full"),
                      ([tmp_path / "no" / "d"], "no such folder")):
        rc, text, err = _run(capsys, *argv)
        assert rc == 2 and err.count("\n") == 1 and msg in err, err
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_variant_picks_the_kind():
    assert random_wan.variant_for("full", None, "flf2v-14b-720p") == ("flf2v", "flf2v-14b-720p")
    assert random_wan.variant_for("full", "i2v", None) == ("i2v", "i2v-14b-720p")
    assert random_wan.variant_for("tiny", None, None) == ("t2v", "tiny-t2v")
    assert random_wan.format_count(147_344) == "147 K"
    assert random_wan.format_count(1_418_996_800) == "1.42 B"
    assert random_wan.format_count(512) == "512"


def test_missing_package_is_one_line(tmp_path):
    """Without torch: importing gvc_jax.testing works (nothing imports torch at module level)
    and the command ends in one line naming what to install, writing nothing."""
    out = tmp_path / "wan"
    code = ("import sys; sys.modules['torch'] = None\n"
            "import gvc_jax.testing, gvc_jax.testing.random_wan as rw\n"
            "import gvc_jax.testing.random_wan_full, gvc_jax.testing.wan22\n"
            f"sys.exit(rw.main([{str(out)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("gvc: error: random Wan folders need torch")
    assert "(missing: torch)" in r.stderr
    assert "pip install torch==2.13.0" in r.stderr
    assert "pip install --no-deps wan22==2.2.11" in r.stderr
    assert os.listdir(tmp_path) == []


def test_ctrl_c_leaves_nothing(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "wan"
    p = subprocess.Popen([sys.executable, "-m", "gvc_jax.testing.random_wan", str(out)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not os.listdir(tmp_path) and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)                     # the temporary folder beside OUT appears
        assert os.listdir(tmp_path) and p.poll() is None, "the writer never started"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == [f"gvc: error: interrupted; {out} not written"]
    assert os.listdir(tmp_path) == []
