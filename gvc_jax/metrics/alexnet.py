"""The LPIPS-Alex v0.1 network in NNX, NHWC: AlexNet feature trunk plus linear heads.

The trunk follows torchvision's ``alexnet().features`` layout.

Five convolutions, each followed by a ReLU; 3x3 stride-2 max pools (no padding, floor)
sit before the second and the third convolution. LPIPS reads the five ReLU outputs:

    conv1 11x11 s4 p2  3->64    relu1
    pool, conv2 5x5 p2 64->192  relu2
    pool, conv3 3x3 p1 192->384 relu3
          conv4 3x3 p1 384->256 relu4
          conv5 3x3 p1 256->256 relu5

The last pool, the adaptive average pool and the classifier are not part of the trunk.
Convolutions and heads run at ``Precision.HIGHEST`` (no TF32 on GPU): a metric should not
depend on the accelerator's default matmul precision. :class:`LPIPSAlex` adds the scaling
layer, the per-pixel unit normalisation and the heads (see :mod:`gvc_jax.metrics.lpips`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_HI = jax.lax.Precision.HIGHEST
# (name, in, out, kernel, stride, padding, pool before)
LAYERS = (
    ("conv1", 3, 64, 11, 4, 2, False),
    ("conv2", 64, 192, 5, 1, 2, True),
    ("conv3", 192, 384, 3, 1, 1, True),
    ("conv4", 384, 256, 3, 1, 1, False),
    ("conv5", 256, 256, 3, 1, 1, False),
)
CHANNELS = tuple(layer[2] for layer in LAYERS)
# torchvision's ``features`` index of each conv (its weight/bias keys)
TORCHVISION_INDEX = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10}
# The released trunk LPIPS-Alex v0.1 is defined with: torchvision's ImageNet AlexNet, whose hub
# file name carries the first 8 hex digits of its SHA-256.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"


def max_pool_3s2(x_bhwc: jax.Array) -> jax.Array:
    """3x3 max pool, stride 2, no padding (torch ``MaxPool2d(3, 2)``)."""
    return jax.lax.reduce_window(x_bhwc, -jnp.inf, jax.lax.max,
                                 (1, 3, 3, 1), (1, 2, 2, 1), "VALID")


def _out_size(n: int) -> int:
    """Spatial size of relu5 for an input side of ``n`` pixels (0 when too small)."""
    n = (n + 2 * 2 - 11) // 4 + 1          # conv1
    for _ in range(2):                      # pool, then a same-size conv
        n = (n - 3) // 2 + 1 if n >= 3 else 0
    return max(n, 0)


def min_side() -> int:
    """Smallest frame side the trunk accepts (every layer keeps at least one pixel)."""
    n = 1
    while _out_size(n) < 1:
        n += 1
    return n


class AlexNetTrunk(nnx.Module):
    """The five-conv AlexNet feature extractor; ``__call__`` returns the five ReLU maps."""

    def __init__(self, *, rngs: nnx.Rngs):
        for name, c_in, c_out, k, s, p, _ in LAYERS:
            setattr(self, name, nnx.Conv(c_in, c_out, (k, k), strides=s, padding=((p, p), (p, p)),
                                         precision=_HI, rngs=rngs))

    def __call__(self, x_bhwc: jax.Array) -> list[jax.Array]:
        feats = []
        h = x_bhwc
        for name, *_, pool in LAYERS:
            if pool:
                h = max_pool_3s2(h)
            h = jax.nn.relu(getattr(self, name)(h))
            feats.append(h)
        return feats


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
SHIFT = (2.0 * IMAGENET_MEAN - 1.0).astype(np.float32)  # ImageNet mean on the [-1, 1] scale
SCALE = (2.0 * IMAGENET_STD).astype(np.float32)         # ImageNet std on the [-1, 1] scale
EPS = 1e-10


def _unit_channels(f_bhwc: jax.Array) -> jax.Array:
    """Each pixel's channel vector divided by its L2 norm plus EPS."""
    return f_bhwc / (jnp.sqrt(jnp.sum(f_bhwc * f_bhwc, axis=-1, keepdims=True)) + EPS)


class LPIPSAlex(nnx.Module):
    """AlexNet trunk plus the five per-channel linear heads ``lin0..lin4``."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.trunk = AlexNetTrunk(rngs=rngs)
        for k, c in enumerate(CHANNELS):
            setattr(self, f"lin{k}", nnx.Param(jnp.zeros((c,), jnp.float32)))

    def distance(self, x0_bhwc: jax.Array, x1_bhwc: jax.Array) -> jax.Array:
        """LPIPS of two float batches in [-1, 1], NHWC; returns float32 [B]."""
        n_b = x0_bhwc.shape[0]
        x_bhwc = (jnp.concatenate([x0_bhwc, x1_bhwc]) - SHIFT) / SCALE  # one trunk call for both
        total_b = jnp.zeros((n_b,), jnp.float32)
        for k, f_bhwc in enumerate(self.trunk(x_bhwc)):
            u_bhwc = _unit_channels(f_bhwc)
            d_bhwc = jnp.square(u_bhwc[:n_b] - u_bhwc[n_b:])
            w_c = getattr(self, f"lin{k}")[...]
            total_b = total_b + jnp.mean(jnp.einsum("bhwc,c->bhw", d_bhwc, w_c, precision=_HI),
                                         axis=(1, 2))
        return total_b


def to_unit(x_bhwc_u8: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return x_bhwc_u8.astype(jnp.float32) / 127.5 - 1.0
