"""Wan I2V and FLF2V in the codec, proven against PyTorch on tiny random diffusers folders
(fp32, CPU).

* ODE parity: from the same x_T, prompt and anchor frame(s), our sampler with no SDE steps
  gives the latents of diffusers' ``WanImageToVideoPipeline`` (``last_image`` for FLF2V) run
  with ``FlowMatchEulerDiscreteScheduler`` on our shifted grid. The pipeline gets our CLIP
  tokens as ``image_embeds`` (it would otherwise use ``CLIPImageProcessor``'s centre crop, not
  Wan's own squash; the tokens themselves are checked against transformers' CLIP here), and
  builds its own mask and anchor latents with its own VAE.
* Codec parity: the independent PyTorch encoder loop (gvc_jax/testing/torch_gvc.py) over diffusers'
  transformer, conditioned on a mask and anchor latents built here in torch with diffusers'
  VAE, chooses the same indices and signs (M_tail on the last latent frames included); fed our
  indices it ends on the same latents.
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
from gvc_jax.models.wan import clip_preprocess  # noqa: E402
from gvc_jax.sampler.scan import encode_gop, sample_gop  # noqa: E402
from gvc_jax.testing.random_wan_tiny import load_pipeline  # noqa: E402
from gvc_jax.testing.refs import rel_l2  # noqa: E402
from gvc_jax.testing.torch_gvc import gvc_encode_torch, wan_velocity  # noqa: E402
from tests.wan.test_wan_parity import GOP, H, PROMPT, SEED, T, W  # noqa: E402


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, H // 8, W // 8, 3)).repeat(8, 1).repeat(8, 2)
    return np.clip(base + rng.integers(-20, 20, (T, H, W, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["i2v", "flf2v"])
def setup(request, tmp_path_factory):
    kind = request.param
    folder = request.getfixturevalue(f"wan_{kind}_diffusers")
    return kind, folder, load_pipeline(folder), str(tmp_path_factory.mktemp(f"cache_{kind}"))


def _model(kind, folder, params, cache):
    return load_model(f"wan2.1-{kind}", folder, Prompt(PROMPT), params, cache_dir=cache)


def _anchors(kind, clip):
    return clip[0], (clip[-1] if kind == "flf2v" else None)


def test_clip_tokens_match_transformers(setup):
    kind, folder, pipe, cache = setup
    params = CodecParams(K=16, M=1, steps=2, sde_steps=0, dtype="float32")
    model = _model(kind, folder, params, cache)
    img = _frames()[:1]
    ours = np.asarray(model.conditioner.clip_tokens(img))
    x = torch.from_numpy(clip_preprocess.official_from_uint8(img, 28)).permute(0, 3, 1, 2)
    with torch.no_grad():
        want = pipe.image_encoder(pixel_values=x, output_hidden_states=True).hidden_states[-2]
    err = rel_l2(ours, want.numpy())
    print(kind, "CLIP tokens rel L2", err)
    assert err <= 1e-5, err


def _pipeline_run(pipe, kind, clip, embeds, x_T, times):
    from diffusers import FlowMatchEulerDiscreteScheduler
    from PIL import Image

    sched = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=1.0)
    original = sched.set_timesteps
    sched.set_timesteps = lambda n, device=None, **kw: original(
        sigmas=[float(s) for s in times[:-1]], device=device)
    pipe.scheduler = sched
    first, last = _anchors(kind, clip)
    kw = {"last_image": Image.fromarray(last)} if last is not None else {}
    # The pipeline refuses `image` together with `image_embeds` but needs the image for its
    # anchor latents: hand it our tokens through its own encode_image instead.
    pipe.encode_image = lambda *a, **k: embeds
    with torch.no_grad():
        return pipe(image=Image.fromarray(first), prompt=PROMPT, num_frames=T, height=H, width=W,
                    guidance_scale=1.0, num_inference_steps=len(times) - 1,
                    max_sequence_length=512,
                    latents=torch.from_numpy(np.asarray(x_T))[None], output_type="latent",
                    return_dict=False, **kw)[0]


def test_ode_parity_with_image_pipeline(setup):
    kind, folder, pipe, cache = setup
    params = CodecParams(steps=8, sde_steps=0, shift=5.0, K=16, M=1, dtype="float32")
    model = _model(kind, folder, params, cache)
    clip = _frames()
    first, last = _anchors(kind, clip)
    cond = {**model.cond, **model.conditioner(first, last, T)}
    spec = topm.spec(params, (1,))
    shape = model.geometry.latent_shape(T, H, W)
    x_T = codebook.init_noise(SEED, GOP, shape)
    ours = np.asarray(sample_gop(model.graphdef, model.state, cond, x_T, jax.random.PRNGKey(0),
                                 spec=spec))
    tok = np.asarray(cond["clip"]).reshape(-1, 5, cond["clip"].shape[-1])   # [1 or 2, 5, D]
    want = _pipeline_run(pipe, kind, clip, torch.from_numpy(tok.copy()), x_T, spec.times())[0].numpy()
    err = rel_l2(ours, want)
    print(kind, "ODE latents rel L2", err)
    assert err <= 1e-5, err
    # the pipeline is sensitive to the anchor: another first frame gives other latents
    other = _pipeline_run(pipe, kind, _frames(1), torch.from_numpy(tok.copy()), x_T, spec.times())
    assert rel_l2(ours, other[0].numpy()) > 1e-3


def _torch_y(pipe, kind, clip) -> np.ndarray:
    """Mask + anchor latents, derived here in torch with diffusers' VAE (not our code)."""
    first, last = _anchors(kind, clip)
    video = torch.zeros(1, 3, T, H, W)
    video[0, :, 0] = torch.from_numpy(first).permute(2, 0, 1).float() / 127.5 - 1
    if last is not None:
        video[0, :, -1] = torch.from_numpy(last).permute(2, 0, 1).float() / 127.5 - 1
    vae = pipe.vae
    with torch.no_grad():
        lat = vae.encode(video).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    lat = (lat - mean) / std
    m = torch.zeros(T)
    m[0] = 1
    if last is not None:
        m[-1] = 1
    m = torch.cat([m[:1].repeat(4), m[1:]]).view(-1, 4).T     # [4, T']
    mask = m[:, :, None, None].expand(4, m.shape[1], *lat.shape[-2:])
    return torch.cat([mask, lat[0]], 0).numpy()


def test_codec_parity_with_torch_reference(setup):
    kind, folder, pipe, cache = setup
    params = CodecParams(K=2048, M=8, M_tail=16, steps=20, sde_steps=17, g_scale=3.0,
                         shift=5.0, dtype="float32")
    model = _model(kind, folder, params, cache)
    clip = _frames()
    first, last = _anchors(kind, clip)
    cond = {**model.cond, **model.conditioner(first, last, T)}
    x0 = model.encode(clip)
    shape = tuple(x0.shape)
    m = topm.m_per_frame(params, shape[1])
    assert m[-1] == 16 and m[0] == 8
    spec = topm.spec(params, m)
    x_T = codebook.init_noise(SEED, GOP, shape)
    idx, sign, x_ours = encode_gop(model.graphdef, model.state, cond, x_T, x0, SEED, GOP,
                                   spec=spec)
    idx, sign, x_ours = np.asarray(idx), np.asarray(sign), np.asarray(x_ours)
    y = _torch_y(pipe, kind, clip)
    assert rel_l2(np.asarray(cond["y"]), y) <= 1e-5
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False,
                                       max_sequence_length=512, device="cpu")
        img = clip_preprocess.official_from_uint8(np.stack([a for a in (first, last)
                                                            if a is not None]), 28)
        tok = pipe.image_encoder(pixel_values=torch.from_numpy(img).permute(0, 3, 1, 2),
                                 output_hidden_states=True).hidden_states[-2]
    vel = wan_velocity(pipe.transformer, embeds[0], image_context=tok if kind == "flf2v" else tok[0],
                       y=y)
    kw = dict(times=spec.times(), sde_steps=params.sde_steps, g_scale=params.g_scale,
              K=params.K, m_per_frame=list(m), seed=SEED, gop=GOP)
    ref = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), **kw)
    used = np.arange(idx.shape[-1])[None, None, :] < np.asarray(m)[None, :, None]
    assert (ref["idx"][~np.broadcast_to(used, idx.shape)] == -1).all()
    same = (ref["idx"] == idx) & (ref["sign"] == sign)
    agree = float(same[np.broadcast_to(used, idx.shape)].mean())
    print(f"{kind} index agreement {agree:.6f} over {int(used.sum()) * idx.shape[0]} slots")
    assert agree >= 0.999, agree
    forced = gvc_encode_torch(vel, np.asarray(x_T), np.asarray(x0), teacher=(idx, sign), **kw)
    err = rel_l2(x_ours, forced["x0"])
    print(kind, "teacher-forced final latents rel L2", err)
    assert err <= 1e-5, err
