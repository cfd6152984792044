"""Smoke test of ``bench/fp8_gpu.py --tiny``: every part on tiny configs on a CPU, the 14B
part in its capped child process, one JSON with every key the GPU run reports.

On a CPU the numbers mean little; here the JSON must hold a figure for every key (diffusers'
only where it is installed), every decode must equal the encoder's reconstruction, the warm
encodes must reproduce the payloads, and fp8 must sit further from float32 than bf16 does.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow        # 2 to 6 min on 2 shared cores (mostly compiles)
def test_bench_fp8_tiny(tmp_path):
    out = tmp_path / "fp8.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "bench/fp8_gpu.py", "--tiny", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["tiny"] is True and res["commands"][-1].startswith("python bench/fp8_gpu.py")
    try:
        import diffusers  # noqa: F401
        have_diffusers = True
    except ImportError:
        have_diffusers = False
    for key in ("dit_1.3b_480p_s_fp8", "dit_1.3b_480p_s_bf16", "gop_1.3b_720p_encode_s",
                "gop_1.3b_720p_decode_s", "gop_14b_720p_encode_s", "gop_14b_720p_decode_s",
                "rel_l2_fp8_vs_fp32", "rel_l2_bf16_vs_fp32", "psnr_fp8_vs_bf16_decode_db",
                "index_agreement_fp8_vs_bf16") + (("dit_1.3b_480p_s_diffusers",)
                                                   if have_diffusers else ()):
        assert isinstance(res[key], float) and res[key] > 0, (key, res[key])
    assert "peak_gib_14b_720p_capped" in res          # null on a CPU (no memory_stats)
    assert 0 < res["rel_l2_bf16_vs_fp32"] < res["rel_l2_fp8_vs_fp32"] < 0.05
    assert 0 <= res["index_agreement_fp8_vs_bf16"] <= 1
    d = res["details"]
    for part in (d["gop13"], d["gop14"], d["drift"]["bf16_gop"]):
        assert part["decode_equals_recon"], part
    assert d["gop13"]["warm_payloads_identical"] and d["gop14"]["warm_payloads_identical"]
    assert d["gop14"]["returncode"] == 0 and d["gop14"]["offload"] == "always"
    assert d["gop13"]["dtype"] == d["gop14"]["dtype"] == "fp8"
