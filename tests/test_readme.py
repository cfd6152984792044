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
