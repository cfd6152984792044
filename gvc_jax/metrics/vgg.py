"""The DISTS network in NNX, NHWC: the VGG16 feature trunk with L2 pooling in place of max
pooling, plus the per-channel weights ``alpha`` and ``beta`` (:class:`DISTSNet`).

The convolutions follow torchvision's ``vgg16().features`` (configuration D): every conv is 3x3,
stride 1, padding 1, followed by a ReLU. DISTS replaces each of the four max pools that sit
between its five stages by :func:`l2_pool` and reads the last ReLU of every stage:

    stage 1: conv1_1 3->64,    conv1_2 64->64                        -> relu1_2
    stage 2: l2_pool, conv2_1 64->128,  conv2_2 128->128             -> relu2_2
    stage 3: l2_pool, conv3_1 128->256, conv3_2, conv3_3 256->256    -> relu3_3
    stage 4: l2_pool, conv4_1 256->512, conv4_2, conv4_3 512->512    -> relu4_3
    stage 5: l2_pool, conv5_1 512->512, conv5_2, conv5_3 512->512    -> relu5_3

The fifth max pool and the classifier are not part of the trunk. Convolutions run at
``Precision.HIGHEST`` (no TF32 on GPU), as in :mod:`gvc_jax.metrics.alexnet`.
:class:`DISTSNet` adds the comparison of :mod:`gvc_jax.metrics.dists` (where it is defined
in words).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_HI = jax.lax.Precision.HIGHEST
# (stage convs as (name, in, out))
STAGES = (
    (("conv1_1", 3, 64), ("conv1_2", 64, 64)),
    (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
    (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)),
    (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)),
    (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)),
)
CHANNELS = tuple(stage[-1][2] for stage in STAGES)  # (64, 128, 256, 512, 512)
# torchvision's ``features`` index of each conv (its weight/bias keys): ReLUs and max pools
# take the indices in between.
TORCHVISION_INDEX = {
    "conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14, "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}

# L2 pooling: the 3 inner taps of a 5-point Hann window, (0.5, 1, 0.5), normalised; the 2-D
# filter is their outer product divided by its sum, i.e. the outer product of (1/4, 1/2, 1/4).
_HANN = np.hanning(5)[1:-1]
POOL_TAPS = tuple(float(v) for v in _HANN / _HANN.sum())
POOL_EPS = 1e-12


def l2_pool(x_bhwc: jax.Array) -> jax.Array:
    """``sqrt(conv(x^2, g) + 1e-12)`` per channel, with the 3x3 filter ``g`` above, stride 2 and
    one zero row/column of padding on every side: a side of n pixels becomes ``(n - 1) // 2 + 1``."""
    sq = jnp.pad(x_bhwc * x_bhwc, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for axis in (1, 2):
        n_out = (sq.shape[axis] - 3) // 2 + 1
        acc = None
        for k, w in enumerate(POOL_TAPS):
            term = w * jax.lax.slice_in_dim(sq, k, k + 2 * (n_out - 1) + 1, stride=2, axis=axis)
            acc = term if acc is None else acc + term
        sq = acc
    return jnp.sqrt(sq + POOL_EPS)


class VGG16Trunk(nnx.Module):
    """The thirteen 3x3 convs of VGG16; ``__call__`` returns the five stage outputs."""

    def __init__(self, *, rngs: nnx.Rngs):
        for stage in STAGES:
            for name, c_in, c_out in stage:
                setattr(self, name, nnx.Conv(c_in, c_out, (3, 3), padding=((1, 1), (1, 1)),
                                             precision=_HI, rngs=rngs))

    def __call__(self, x_bhwc: jax.Array) -> list[jax.Array]:
        feats = []
        h = x_bhwc
        for i, stage in enumerate(STAGES):
            if i:
                h = l2_pool(h)
            for name, *_ in stage:
                h = jax.nn.relu(getattr(self, name)(h))
            feats.append(h)
        return feats


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
FEATURE_CHANNELS = (3, *CHANNELS)        # the input itself, then the five stages
N_WEIGHTS = sum(FEATURE_CHANNELS)        # 1475
C1 = C2 = 1e-6


class DISTSNet(nnx.Module):
    """VGG16 trunk plus the per-channel weights ``alpha`` and ``beta`` (1475 each)."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.trunk = VGG16Trunk(rngs=rngs)
        self.alpha = nnx.Param(jnp.zeros((N_WEIGHTS,), jnp.float32))
        self.beta = nnx.Param(jnp.zeros((N_WEIGHTS,), jnp.float32))

    def distance(self, x0_bhwc: jax.Array, x1_bhwc: jax.Array) -> jax.Array:
        """DISTS of two float batches in [0, 1], NHWC; returns float32 [B]."""
        n_b = x0_bhwc.shape[0]
        x_bhwc = jnp.concatenate([x0_bhwc, x1_bhwc])   # one trunk call for both sides
        feats = [x_bhwc] + self.trunk((x_bhwc - IMAGENET_MEAN) / IMAGENET_STD)
        alpha, beta = self.alpha[...], self.beta[...]
        w_sum = jnp.sum(alpha) + jnp.sum(beta)
        alpha, beta = alpha / w_sum, beta / w_sum
        d1 = jnp.zeros((n_b,), jnp.float32)
        d2 = jnp.zeros((n_b,), jnp.float32)
        lo = 0
        for f_bhwc in feats:
            c = f_bhwc.shape[-1]
            a_c, b_c = alpha[lo:lo + c], beta[lo:lo + c]
            lo += c
            f0, f1 = f_bhwc[:n_b], f_bhwc[n_b:]
            mx = jnp.mean(f0, axis=(1, 2))
            my = jnp.mean(f1, axis=(1, 2))
            s1 = (2 * mx * my + C1) / (mx * mx + my * my + C1)
            d1 = d1 + jnp.einsum("bc,c->b", s1, a_c, precision=_HI)
            vx = jnp.mean(jnp.square(f0 - mx[:, None, None, :]), axis=(1, 2))
            vy = jnp.mean(jnp.square(f1 - my[:, None, None, :]), axis=(1, 2))
            cxy = jnp.mean(f0 * f1, axis=(1, 2)) - mx * my
            s2 = (2 * cxy + C2) / (vx + vy + C2)
            d2 = d2 + jnp.einsum("bc,c->b", s2, b_c, precision=_HI)
        return 1.0 - (d1 + d2)
