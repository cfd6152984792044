"""Smoke test of ``bench/wan_rcc_gpu.py --tiny``: top-M and rcc with parts on a tiny Wan folder.

The bench writes a tiny random official-layout folder, codes a random clip with top-M and with
``--coding rcc`` at top-M's bits per latent frame, and records times, bits and exactness; here
its JSON must hold both settings, rcc's payload must be exactly rows x steps x bits, and every
decode from the bytes must equal the encoder's reconstruction.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow        # ~70 s; the rcc paths themselves are in tests/test_rcc_*.py
def test_bench_wan_rcc_tiny(tmp_path):
    out = tmp_path / "rcc.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "bench/wan_rcc_gpu.py", "--tiny", "--work",
                        str(tmp_path / "work"), "--rcc", "8:2:3:dpm2m", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    topm, rcc = res["settings"]
    assert topm["name"] == "topm" and topm["model_calls_per_gop"] == 20
    assert (rcc["bits"], rcc["parts"], rcc["tail_steps"], rcc["tail_solver"]) == (8, 2, 3,
                                                                                "dpm2m")
    c, f, h, w = res["latent_shape"]
    assert rcc["rows_per_step"] == 2 * f and rcc["row_len"] == -(-c * h * w // 2)
    assert rcc["payload_bits_per_gop"] == [rcc["rows_per_step"] * rcc["steps"] * 8]
    assert rcc["steps"] == res["topm_bits_per_latent_frame"] // 16
    assert rcc["model_calls_per_gop"] == rcc["steps"] + 2 + 1
    for s in (topm, rcc):
        assert s["decode_equals_recon"] and s["warm_stream_identical"]
        assert s["encode_warm_s"] > 0 and s["bytes"] > 0
