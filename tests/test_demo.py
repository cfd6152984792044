"""`gvc demo` writes every promised file, atomically, with a consistent report."""
import json
import os

import numpy as np

from gvc_jax import demo


def test_demo_outputs(tmp_path, monkeypatch):
    # the real demo codes 32 frames with K=2048, M=64 (about a minute); the
    # same code path with a small codebook keeps the default run fast
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", {"K": 64, "M": 4, "gop_frames": 8})
    out = tmp_path / "demo"
    (tmp_path / "demo").mkdir()
    (out / "stale.txt").write_text("replaced only once the new demo is complete")
    rep = demo.run(str(out), frames=8)
    names = sorted(os.listdir(out))
    assert names == ["decoded.mp4", "decoded.npy", "demo.gvc", "preview.mp4", "report.json",
                     "report.md"]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".gvc-demo-")] == []
    disk = json.loads((out / "report.json").read_text())
    assert disk["bytes_file"] == os.path.getsize(out / "demo.gvc") == rep["bytes_file"]
    dec = np.load(out / "decoded.npy")
    assert dec.shape == (8, 36, 44, 3)
    assert disk["decode_bit_exact"] is True
    md = (out / "report.md").read_text()
    for key in ("bpp", "kbps", "PSNR", "D_p(R)", "encode", "decode"):
        assert key in md
    assert np.isfinite(disk["psnr"]) and np.isfinite(disk["psnr_realism"])
    assert disk["psnr_shannon"] > disk["psnr_realism"]     # D(R) <= D_p(R)
