"""Smoke test of ``bench/wan_batch_gpu.py --tiny``: data parallel over GOPs on 8 host devices.

The bench runs its ``1dev`` and ``Ndev`` cases in subprocesses (tiny DiT, CPU); here its JSON
must hold both cases, positive throughput speedups, and on CPU the GOPs both cases coded must
have exactly the same indices and signs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_DEVICES = 8


@pytest.mark.slow        # ~40 s; the batch paths themselves are in tests/test_batch.py
def test_bench_batch_tiny(tmp_path):
    out = tmp_path / "batch.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_FLAGS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={N_DEVICES}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "bench/wan_batch_gpu.py", "--tiny", "--out", str(out),
                        "--work", str(tmp_path / "work")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["command"].startswith("python bench/wan_batch_gpu.py --tiny")
    assert res["config"] == "tiny-t2v" and res["jax"] and res["device"]
    one, many = res["cases"]["1dev"], res["cases"]["Ndev"]
    assert one["n_devices"] == 1 and many["n_devices"] == N_DEVICES
    gpd = res["params"]["gops_per_device"]
    assert one["batch_gops"] == gpd and many["batch_gops"] == N_DEVICES * gpd
    for c in (one, many):
        assert len(c["encode_batch_s"]) == res["params"]["batches"]
        assert c["encode_gops_per_s"] > 0 and c["decode_gops_per_s"] > 0
        assert c["decode_vs_encode_rel_l2"] < 1e-5, c
    cmp = res["comparison"]
    for k in ("encode_throughput_speedup", "decode_throughput_speedup"):
        assert res[k] > 0 and cmp[k] == res[k]
    assert cmp["weights_checksum_rel_diff"] == 0.0           # the same model in both cases
    assert cmp["common_gops"] == gpd * (1 + res["params"]["batches"])
    assert cmp["indices_equal_share"] == 1.0 and cmp["signs_equal_share"] == 1.0
    assert cmp["common_gops_identical"] is True
