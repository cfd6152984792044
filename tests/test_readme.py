"""The README's Python example runs as printed, in under a minute on the 2-core CI machine."""
from __future__ import annotations

import os
import re
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_example_runs(tmp_path, monkeypatch):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Python API"):text.index("## Layout")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    exec(compile(code, "README.md", "exec"), {})
    elapsed = time.perf_counter() - t0
    assert os.path.getsize("clip.gvc") > 0 and os.path.isfile("clip_decoded.npy")
    print(f"README example: {elapsed:.1f} s")
    assert elapsed < 60, elapsed


def test_make_test_can_take_the_cpu_torch_wheel():
    """`make test` says what torch it installs and takes PyTorch's CPU index when asked
    (`make -n` prints the commands without running them)."""
    import subprocess

    with open(os.path.join(ROOT, "README.md")) as f:
        quick = f.read().split("## Status")[0]
    assert "CPU torch" in quick and "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in quick
    env = dict(os.environ, VENV="/nonexistent-venv")
    out = subprocess.run(["make", "-n", "-B", "venv-test",
                          "TORCH_INDEX=https://download.pytorch.org/whl/cpu"], cwd=ROOT,
                         capture_output=True, text=True, env=env, check=True).stdout
    assert "--extra-index-url https://download.pytorch.org/whl/cpu -e .[test,tpu]" in \
        out.replace('"', "")
    plain = subprocess.run(["make", "-n", "-B", "venv-test"], cwd=ROOT, capture_output=True,
                           text=True, env=env, check=True).stdout
    assert "--extra-index-url" not in plain
