"""Ctrl-C: a real SIGINT stops a running encode within about a second, exit 130, no partial
output, and an existing output file is left as it was."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np



def default_sigint():
    """The child gets the default SIGINT action, as from an interactive shell: a test run started
    in the background (``cmd &``) inherits SIGINT ignored, which Python and gvc then honour."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_sigint_stops_a_running_encode(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "src.npy", rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
    out = tmp_path / "a.gvc"
    out.write_bytes(b"previous contents")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "gvc_jax", "compress", str(tmp_path / "src.npy"),
                          "-o", str(out), "--config", "gaussian", "--recon",
                          str(tmp_path / "r.npy")], stderr=subprocess.PIPE, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         preexec_fn=default_sigint)
    lines = []
    deadline = time.time() + 120
    while time.time() < deadline:           # the encoder's first GOP has started
        line = p.stderr.readline()
        lines.append(line)
        if "GOP 1/" in line or not line:
            break
    assert any("GOP 1/1 encode" in ln for ln in lines), lines
    time.sleep(8)                           # well inside the jitted scan
    assert p.poll() is None, "the encode ended before it could be interrupted"
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    elapsed = time.perf_counter() - t0
    err = p.stderr.read()
    assert rc == 130, err
    assert elapsed < 1.5, f"took {elapsed:.2f} s to stop"
    assert "interrupted" in err
    assert out.read_bytes() == b"previous contents"
    assert not (tmp_path / "r.npy").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.gvc", "src.npy"]   # no temporary files left
