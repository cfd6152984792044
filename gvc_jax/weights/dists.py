"""DISTS weights -> :class:`gvc_jax.metrics.dists.DISTS` (docs/metrics.md, "DISTS").

Two files, each with its own explicit table:

* trunk: torchvision's ``vgg16-397923af.pth``: ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}
  .{weight,bias}`` (the thirteen 3x3 convs). Its ``classifier.{0,3,6}.*`` tensors (the ImageNet
  head, unused by DISTS) are dropped by :data:`TRUNK_IGNORED`, by name;
* ``alpha`` and ``beta``, each ``[1, 1475, 1, 1]``: ``DISTS_pytorch/weights.pt`` shipped in the
  ``dists-pytorch`` 0.1 wheel, found with ``importlib.util.find_spec`` without importing the
  package (it imports torchvision).

Both are read with :func:`gvc_jax.weights.sources.iter_torch_any` (zip or old-style ``.pth``), so
no pickled code runs and torch is not imported. Any unmapped, missing or misshapen tensor is a
:class:`~gvc_jax.weights.table.ConversionError`; :func:`load_dists` reports missing or unreadable
files as :class:`~gvc_jax.metrics.errors.MetricUnavailable` with a one-line reason.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os

import numpy as np

from gvc_jax.metrics.dists import DISTS
from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.metrics.psnr import check_video_pair
from gvc_jax.metrics.vgg import TORCHVISION_INDEX
from gvc_jax.weights.lpips import torch_hub_checkpoint_dirs
from gvc_jax.weights.sources import CheckpointError, iter_torch_any
from gvc_jax.weights.table import ConversionError, Rule, abstract_targets, convert, load_into

VGG16_FILE = "vgg16-397923af.pth"
VGG16_SHA256_PREFIX = "397923af"  # torch hub names files <name>-<first 8 hex of sha256>
DISTS_PACKAGE = "DISTS_pytorch"
DISTS_WEIGHTS = "weights.pt"
DISTS_PIP = "pip install --no-deps dists-pytorch==0.1"


def _t_channel(a: np.ndarray) -> np.ndarray:  # [1, 1475, 1, 1] -> [1475]
    if a.ndim != 4 or a.shape[0] != 1 or a.shape[2:] != (1, 1):
        return a  # the shape check of the table then reports the mismatch
    return a.reshape(-1)


WEIGHT_RULES = [Rule(r"(alpha|beta)", "{0}", _t_channel)]
TRUNK_RULES = [
    Rule(rf"features\.{idx}\.{src}", f"trunk/{name}/{dst}", tf)
    for name, idx in TORCHVISION_INDEX.items()
    for src, dst, tf in (("weight", "kernel", "conv2d"), ("bias", "bias", "none"))
]
TRUNK_IGNORED = [r"classifier\.(?:0|3|6)\.(?:weight|bias)"]


# ------------------------------------------------------------------- finding files
def vgg16_search_paths(path: str | None = None) -> list[str]:
    """Where :func:`find_vgg16_weights` looks, in order."""
    if path is not None:
        path = os.path.expanduser(os.fspath(path))
        return [os.path.join(path, VGG16_FILE) if os.path.isdir(path) else path]
    return [os.path.join(d, VGG16_FILE) for d in torch_hub_checkpoint_dirs()]


def find_vgg16_weights(path: str | None = None) -> str | None:
    """The VGG16 trunk file: ``path`` (a file, or a folder holding ``vgg16-397923af.pth``) when
    given, else the first hit in torch's hub cache (``$TORCH_HOME/hub/checkpoints``, then
    ``${XDG_CACHE_HOME:-~/.cache}/torch/hub/checkpoints``); None when absent."""
    for p in vgg16_search_paths(path):
        if os.path.isfile(p):
            return p
    return None


def find_dists_weights() -> str | None:
    """``DISTS_pytorch/weights.pt`` of the installed wheel, found without importing it."""
    spec = importlib.util.find_spec(DISTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = os.path.join(loc, DISTS_WEIGHTS)
        if os.path.isfile(p):
            return p
    return None


def official_vgg16(path: str) -> bool:
    """Whether the file's SHA-256 starts with the 8 hex digits in its hub name (``397923af``):
    a file saved under that name with other weights loads, but is not torchvision's."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest().startswith(VGG16_SHA256_PREFIX)


# --------------------------------------------------------------------- conversion
def model_factory():
    from flax import nnx

    from gvc_jax.metrics.vgg import DISTSNet
    return lambda: DISTSNet(rngs=nnx.Rngs(0))


def split_targets(targets: dict) -> tuple[dict, dict]:
    """(alpha/beta targets, trunk targets) of the flat model state."""
    trunk = {k: v for k, v in targets.items() if k.startswith("trunk/")}
    rest = {k: v for k, v in targets.items() if not k.startswith("trunk/")}
    return rest, trunk


def convert_dists(vgg16_path: str, weights_path: str) -> dict[str, np.ndarray]:
    """Both files into the flat ``{path: array}`` state of ``DISTSNet``; raises
    :class:`ConversionError` on any unmapped, missing or misshapen tensor."""
    ab_t, trunk_t = split_targets(abstract_targets(model_factory()))
    out = convert(iter_torch_any(weights_path), WEIGHT_RULES, ab_t)
    out.update(convert(iter_torch_any(vgg16_path), TRUNK_RULES, trunk_t, ignore=TRUNK_IGNORED))
    return out


def load_dists_net(vgg16_path: str, weights_path: str):
    """A ``DISTSNet`` with both files' weights."""
    return load_into(model_factory(), convert_dists(vgg16_path, weights_path))


def load_dists(vgg16: str | None = None) -> DISTS:
    """A ready :class:`DISTS`: ``vgg16`` is the trunk file or its folder (default: torch's hub
    cache); alpha/beta come from the dists-pytorch wheel. Raises :class:`MetricUnavailable` with
    a one-line reason when a file is missing or unreadable."""
    trunk = find_vgg16_weights(vgg16)
    if trunk is None:
        looked = ", ".join(vgg16_search_paths(vgg16))
        raise MetricUnavailable(f"DISTS needs the VGG16 trunk weights {VGG16_FILE}; not found "
                                f"(looked for {looked})")
    ab = find_dists_weights()
    if ab is None:
        raise MetricUnavailable(f"DISTS needs {DISTS_PACKAGE}/{DISTS_WEIGHTS} (alpha/beta) from "
                                f"the dists-pytorch wheel; not found ({DISTS_PIP})")
    try:
        net = load_dists_net(trunk, ab)
    except (CheckpointError, ConversionError) as e:
        raise MetricUnavailable(f"DISTS weights unusable: {e}") from None
    return DISTS(net, trunk_path=trunk, weights_path=ab)


_CACHE: dict[tuple, DISTS] = {}


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def dists(ref, dist, *, vgg16: str | None = None, batch: int = 4) -> np.ndarray:
    """Per-frame DISTS of two uint8 [T,H,W,3] videos, float64 [T] (lower is closer).

    The loaded model is cached per weight files. Raises :class:`MetricUnavailable` when the
    weights are missing, ValueError on bad input.
    """
    ref, dist = check_video_pair(ref, dist)
    trunk, ab = find_vgg16_weights(vgg16), find_dists_weights()
    key = (_file_key(trunk), _file_key(ab)) if trunk and ab else None
    model = _CACHE.get(key) if key else None
    if model is None:
        model = load_dists(vgg16)
        _CACHE[(_file_key(model.trunk_path), _file_key(model.weights_path))] = model
    return model(ref, dist, batch=batch)
