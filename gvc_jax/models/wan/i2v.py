"""Wan 2.1 image conditioning for I2V and FLF2V (docs/wan.md, "I2V and FLF2V").

Given the decoded anchor frame(s) of a GOP, :class:`ImageConditioner` builds the two extra inputs
of an i2v/flf2v DiT, the same way on the encoder and the decoder:

* ``clip``: the CLIP ViT-H/14 tokens of each anchor (Wan's own preprocessing: the whole frame
  squashed to 224x224 with bicubic resampling, :func:`clip_preprocess.official_from_uint8`);
  FLF2V puts the first frame's 257 tokens before the last frame's (514 in all);
* ``y``: 4 mask channels and 16 latent channels. The latents are the VAE encoding of the clip
  ``[first, 0, ..., 0]`` (I2V) or ``[first, 0, ..., 0, last]`` (FLF2V) in [-1, 1], with 0 the
  mid grey; the mask is 1 on the anchored pixel frames and 0 elsewhere, with the first frame
  repeated 4 times so the pixel frames fold into groups of 4 per latent frame.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gvc_jax.models.wan import clip_preprocess


def pixel_mask(n_frames: int, last: bool) -> np.ndarray:
    """``[n_frames]`` 1 on the anchored frames (the first, and the last for FLF2V)."""
    m = np.zeros(n_frames, np.float32)
    m[0] = 1.0
    if last:
        m[-1] = 1.0
    return m


def latent_mask(n_frames: int, last: bool, h: int, w: int) -> np.ndarray:
    """The DiT's 4 mask channels ``[4, T', h, w]`` for ``n_frames = 1 + 4(T'-1)`` pixel frames."""
    m = pixel_mask(n_frames, last)
    m = np.concatenate([np.repeat(m[:1], 4), m[1:]])        # 4 (T' - 1) + 4 entries
    m = m.reshape(-1, 4).T                                  # [4, T']
    return np.broadcast_to(m[:, :, None, None], (4, m.shape[1], h, w)).astype(np.float32)


class ImageConditioner:
    """``(first, last | None, n_frames) -> {"clip", "y"}`` for one GOP (uint8 frames at the
    coded size)."""

    def __init__(self, clip_model, vae, dtype, *, flf: bool):
        from flax import nnx

        from gvc_jax.models.wan.clip import make_apply

        graphdef, self._clip_state = nnx.split(clip_model)
        self.image_size = int(clip_model.cfg.image_size)
        self._clip = make_apply(graphdef)
        self.vae, self.dtype, self.flf = vae, dtype, flf

    def clip_tokens(self, frames_nhwc_u8: np.ndarray) -> jax.Array:
        x = clip_preprocess.official_from_uint8(frames_nhwc_u8, self.image_size)
        return self._clip(self._clip_state, jnp.asarray(x))   # [N, 257, D]

    def __call__(self, first: np.ndarray, last: np.ndarray | None, n_frames: int) -> dict:
        if self.flf != (last is not None):
            raise ValueError("FLF2V takes a first and a last frame, I2V only a first")
        anchors = np.stack([first] + ([last] if last is not None else []))
        tok = self.clip_tokens(anchors)
        clip = tok.reshape(-1, tok.shape[-1])                # FLF2V: first's tokens, then last's
        h, w = first.shape[:2]
        video = np.zeros((n_frames, h, w, 3), np.float32)
        video[0] = first.astype(np.float32) / 127.5 - 1.0
        if last is not None and n_frames > 1:
            video[-1] = last.astype(np.float32) / 127.5 - 1.0
        x = jnp.transpose(jnp.asarray(video), (3, 0, 1, 2))[None]
        lat = self.vae.encode_bcthw(x)[0]                    # [16, T', h/8, w/8]
        mask = latent_mask(n_frames, last is not None and n_frames > 1, *lat.shape[2:])
        y = jnp.concatenate([jnp.asarray(mask), lat], axis=0)
        return {"clip": clip.astype(self.dtype), "y": y.astype(self.dtype)}
