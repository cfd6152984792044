"""Wan T2V in the codec, proven against PyTorch on a tiny random diffusers folder (fp32, CPU).

* ODE parity: with no SDE steps our sampler is a flow-matching Euler sampler, so from the same
  x_T and prompt it must give diffusers' ``WanPipeline`` latents (and decoded frames) with
  ``FlowMatchEulerDiscreteScheduler`` set to our shifted time grid.
* Codec parity: an independent PyTorch encoder loop (gvc_jax/testing/torch_gvc.py, written from the
  equations, atoms from ``codebook.atoms_numpy``) over diffusers' transformer chooses the same
  indices and signs; fed our indices (teacher forcing) it ends on the same latents.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gvc_jax.codec.codings import topm  # noqa: E402
from gvc_jax import codebook  # noqa: E402
from gvc_jax.codec.codec_model import load_model  # noqa: E402
from gvc_jax.codec.prompt import Prompt  # noqa: E402
from gvc_jax.codec.params import CodecParams  # noqa: E402
from gvc_jax.sampler.scan import encode_gop, sample_gop  # noqa: E402
from gvc_jax.testing.torch_gvc import gvc_encode_torch, wan_velocity  # noqa: E402

PROMPT = "a red fox runs across a snowy field at dawn"
T, H, W = 9, 32, 48          # latent [16, 3, 4, 6]
SEED, GOP = 5, 2


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def pipe(wan_diffusers_folder):
    from gvc_jax.testing.random_wan_tiny import load_pipeline

    return load_pipeline(wan_diffusers_folder)


def _model(folder, params, cache, negative=""):
    return load_model("wan2.1-t2v", folder, Prompt(PROMPT, negative), params, cache_dir=cache)


def _pipeline_run(pipe, x_T, times, output_type, guidance=1.0, negative=None):
    """WanPipeline from latents x_T, its Euler scheduler forced onto our grid ``times``."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=1.0)
    original = sched.set_timesteps
    sched.set_timesteps = lambda n, device=None, **kw: original(
        sigmas=[float(s) for s in times[:-1]], device=device)
    pipe.scheduler = sched
    with torch.no_grad():
        out = pipe(prompt=PROMPT, negative_prompt=negative, num_frames=T, height=H, width=W,
                   guidance_scale=guidance,
                   num_inference_steps=len(times) - 1, max_sequence_length=512,
                   latents=torch.from_numpy(np.asarray(x_T))[None], output_type=output_type,
                   return_dict=False)[0]
    return out


@pytest.mark.parametrize("guidance,negative", [(1.0, ""), (4.0, "blurry, static")])
def test_ode_parity_with_wan_pipeline(pipe, wan_diffusers_folder, tmp_path, guidance,
                                      negative):
    params = CodecParams(steps=8, sde_steps=0, shift=3.0, K=16, M=1, dtype="float32",
                         guidance=guidance)
    model = _model(wan_diffusers_folder, params, str(tmp_path), negative)
    spec = topm.spec(params, (1,))
    shape = model.geometry.latent_shape(T, H, W)
    x_T = codebook.init_noise(SEED, GOP, shape)
    ours = np.asarray(sample_gop(model.graphdef, model.state, model.cond, x_T,
                                 jax.random.PRNGKey(0), spec=spec))
    times = spec.times()
    # The pipeline's timesteps are our grid times 1000, as our adapter feeds the DiT.
    np.testing.assert_allclose(times[:-1], np.float32(times[:-1]), rtol=0)
    run = dict(guidance=guidance, negative=negative or None)
    want = _pipeline_run(pipe, x_T, times, "latent", **run)[0].numpy()
    err = rel_l2(ours, want)
    print("ODE latents rel L2", err)
    assert err <= 1e-5, err
    frames = _pipeline_run(pipe, x_T, times, "np", **run)[0]       # [T, H, W, 3] in [0, 1]
    ours_frames = (np.asarray(model.autoencoder.decode(ours)) + 1) / 2
    err_f = rel_l2(ours_frames, frames)
    print("ODE decoded frames rel L2", err_f)
    assert ours_frames.shape == frames.shape
    assert err_f <= 1e-5, err_f


def test_codec_parity_with_torch_reference(pipe, wan_diffusers_folder, tmp_path):
    params = CodecParams(K=2048, M=12, steps=20, sde_steps=17, g_scale=3.0, shift=3.0,
                         dtype="float32")
    model = _model(wan_diffusers_folder, params, str(tmp_path))
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (1, H // 8, W // 8, 3)).repeat(8, 1).repeat(8, 2)
    clip = np.clip(clip + rng.integers(-20, 20, (T, H, W, 3)), 0, 255).astype(np.uint8)
    x0 = model.encode(clip)
    shape = tuple(x0.shape)
    m = topm.m_per_frame(params, shape[1])
    spec = topm.spec(params, m)
    x_T = codebook.init_noise(SEED, GOP, shape)
    idx, sign, x_ours = encode_gop(model.graphdef, model.state, model.cond, x_T, x0, SEED, GOP,
                                   spec=spec)
    idx, sign, x_ours = np.asarray(idx), np.asarray(sign), np.asarray(x_ours)

    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False,
                                       max_sequence_length=512, device="cpu")
    vel = wan_velocity(pipe.transformer, embeds[0])
    kw = dict(times=spec.times(), sde_steps=params.sde_steps, g_scale=params.g_scale,
              K=params.K, m_per_frame=list(m), seed=SEED, gop=GOP)
    ref = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), **kw)
    agree = float(np.mean((ref["idx"] == idx) & (ref["sign"] == sign)))
    print(f"index agreement {agree:.6f} over {idx.size} slots")
    assert agree >= 0.999, agree

    forced = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), teacher=(idx, sign), **kw)
    err = rel_l2(x_ours, forced["x0"])
    print("teacher-forced final latents rel L2", err)
    assert err <= 1e-5, err
    # the reference is sensitive to what it is fed: other indices give another result
    other = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0),
                             teacher=((idx + 1) % params.K, sign), **kw)
    assert rel_l2(x_ours, other["x0"]) > 1e-3
