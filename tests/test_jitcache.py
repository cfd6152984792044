"""JAX's persistent compilation cache in the ``gvc`` process (gvc_jax/jitcache.py): a second
process with the same shapes compiles nothing new, and ``--no-cache`` writes no cache."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _entries(folder) -> set[str]:
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def _compress(tmp_path, *extra):
    p = subprocess.run([sys.executable, "-m", "gvc_jax", "compress", str(tmp_path / "c.npy"),
                        "-o", str(tmp_path / "c.gvc"), "--config", "gaussian-fast", "--quiet",
                        *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr


def test_second_process_reuses_the_compiled_programs(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "c.npy", rng.integers(0, 256, (16, 32, 48, 3), dtype=np.uint8))
    cache = tmp_path / "cache"
    _compress(tmp_path, "--cache-dir", str(cache))
    first = _entries(cache / "xla")
    assert first, "the first process wrote no compiled program"
    _compress(tmp_path, "--cache-dir", str(cache))
    assert _entries(cache / "xla") == first        # every program came from the cache

    off = tmp_path / "off"
    _compress(tmp_path, "--cache-dir", str(off), "--no-cache")
    assert not (off / "xla").exists()
