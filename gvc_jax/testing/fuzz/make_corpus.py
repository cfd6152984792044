"""Writes the seed files of the bitstream fuzzer (real streams of every mode we have).

    python -m gvc_jax.testing.fuzz.make_corpus OUT_DIR

* the embedded ``gaussian`` config on tiny random clips (K=32, M=2): one GOP, two GOPs with a
  short last GOP, an odd frame size;
* Wan 2.1 T2V (``wan2.1-t2v``) from a tiny random official folder
  (:func:`gvc_jax.testing.random_wan_tiny.write_official_folder`), K=64, M=2, 5 frames of
  16x16 with a prompt, and with guidance and a negative prompt (the NUL-separated PRMT form).

The committed corpus (tests/fuzz/corpus) is these seeds merged with the inputs of a fuzz run that
reached new coverage (libFuzzer ``-merge=1``), see bench/fuzz_gvc.py.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np


def _clip(t, h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def write_seeds(out: str, wan: bool = True) -> list[str]:
    from gvc_jax.codec.api import compress_file
    from gvc_jax.codec.prompt import Prompt

    os.makedirs(out, exist_ok=True)
    small = {"K": 32, "M": 2, "steps": 4, "sde_steps": 3}
    jobs = [("gaussian_1gop.gvc", _clip(4, 16, 16, 0), dict(overrides=dict(small))),
            ("gaussian_2gop.gvc", _clip(7, 16, 16, 1), dict(overrides=dict(small, gop_frames=4))),
            ("gaussian_odd.gvc", _clip(5, 9, 13, 2), dict(overrides=dict(small, gop_frames=8)))]
    paths = []
    for name, clip, kw in jobs:
        p = os.path.join(out, name)
        compress_file(clip, p, config="gaussian", **kw)
        paths.append(p)
    if wan:
        from gvc_jax.testing.random_wan_tiny import write_official_folder

        with tempfile.TemporaryDirectory() as tmp:
            folder = write_official_folder(os.path.join(tmp, "wan"), seed=0)
            wan_kw = dict(config="wan2.1-t2v", weights=folder, cache_dir=False)
            for name, ov, prompt in (
                    ("wan_t2v_prompt.gvc", {"K": 64, "M": 2}, Prompt("a red fox runs")),
                    ("wan_t2v_cfg.gvc", {"K": 64, "M": 2, "steps": 4, "sde_steps": 3,
                                         "guidance": 3.0},
                     Prompt("a red fox runs", "blurry"))):
                p = os.path.join(out, name)
                compress_file(_clip(5, 16, 16, 3), p, overrides=ov, prompt=prompt, **wan_kw)
                paths.append(p)
    return paths


if __name__ == "__main__":
    for p in write_seeds(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gvc_seeds"):
        print(p, os.path.getsize(p))
