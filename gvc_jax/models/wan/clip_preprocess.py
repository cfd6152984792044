"""Image preprocessing for the CLIP vision tower: the two Wan pipelines differ.

* **official** (``CLIPModel.visual`` in ``wan/modules/clip.py``): the frame,
  as float in [-1, 1], is *squashed* to 224x224 whatever its aspect ratio,
  with PyTorch's bicubic ``F.interpolate`` (Keys cubic a=-0.75,
  ``align_corners=False``, no antialiasing, edge pixels replicated, no
  clamping), then mapped to [0, 1] and normalised with the OpenAI CLIP
  mean/std. Done here with two separable resampling matrices in NumPy.
* **diffusers** (``CLIPImageProcessor``): the uint8 image is resized with
  PIL bicubic (a=-0.5, antialiased when shrinking, rounded back to uint8) so
  its *shortest* side is 224, then *center-cropped* to 224x224, scaled by
  1/255 and normalised with the same mean/std.

So for a 16:9 frame the official path sees the whole (distorted) frame and
diffusers sees its central square; the two give different CLIP tokens for
the same checkpoint. Both return ``[N, 224, 224, 3]`` float32.
"""
from __future__ import annotations

import numpy as np

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of torch bicubic, ``align_corners=False``.

    Source coordinates and Keys coefficients (a=-0.75) are computed in float32
    in the same order as PyTorch's kernel, so the weights match it closely
    (the fractional offset loses bits at large coordinates in float32).
    """
    f = np.float32
    a = f(-0.75)
    scale = f(n_in) / f(n_out)
    src = scale * (np.arange(n_out, dtype=f) + f(0.5)) - f(0.5)
    x0 = np.floor(src)
    t = (src - x0).astype(f)

    def near(x):  # |x| <= 1
        return ((a + f(2)) * x - (a + f(3))) * x * x + f(1)

    def far(x):  # 1 < |x| < 2
        return ((a * x - f(5) * a) * x + f(8) * a) * x - f(4) * a

    coeffs = [far(t + f(1)), near(t), near(f(1) - t), far((f(1) - t) + f(1))]
    x0 = x0.astype(np.int64)
    m = np.zeros((n_out, n_in), np.float32)
    for j, c in zip(range(-1, 3), coeffs):
        idx = np.clip(x0 + j, 0, n_in - 1)
        np.add.at(m, (np.arange(n_out), idx), c)
    return m


def official(frames_nhwc: np.ndarray, size: int = 224) -> np.ndarray:
    """Wan's own path. ``frames_nhwc``: float in [-1, 1] (``to_tensor`` then
    ``sub(0.5).div(0.5)`` in the pipeline)."""
    x = np.asarray(frames_nhwc, np.float32)
    mh = bicubic_matrix(x.shape[1], size)
    mw = bicubic_matrix(x.shape[2], size)
    y = np.einsum("oh,nhwc->nowc", mh, x)
    y = np.einsum("pw,nowc->nopc", mw, y)
    y = y * 0.5 + 0.5
    return ((y - CLIP_MEAN) / CLIP_STD).astype(np.float32)


def official_from_uint8(frames_nhwc_u8: np.ndarray, size: int = 224) -> np.ndarray:
    """Convenience: uint8 frames -> [-1, 1] -> :func:`official`."""
    x = np.asarray(frames_nhwc_u8, np.float32) / 255.0
    return official(x * 2.0 - 1.0, size)


def diffusers(images_nhwc_u8: np.ndarray, size: int = 224) -> np.ndarray:
    """diffusers' ``CLIPImageProcessor`` path (shortest side -> 224, center crop)."""
    from PIL import Image

    out = []
    for img in np.asarray(images_nhwc_u8, np.uint8):
        h, w = img.shape[:2]
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nh, nw = size, int(size * w / h)
        r = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BICUBIC))
        top, left = (nh - size) // 2, (nw - size) // 2
        r = r[top:top + size, left:left + size]
        y = (r.astype(np.float64) * (1 / 255)).astype(np.float32)
        out.append((y - CLIP_MEAN) / CLIP_STD)
    return np.stack(out).astype(np.float32)
