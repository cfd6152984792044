"""LPIPS-Alex v0.1 weights -> :class:`gvc_jax.metrics.alexnet.LPIPSAlex`, and the loaders of the
metric: :func:`load` (a ready :class:`gvc_jax.metrics.lpips.LPIPS`) and :func:`lpips` (one
call, the loaded model kept per weight files).

Two files, each with its own explicit table:

* heads: ``lpips/weights/v0.1/alex.pth`` shipped in the ``lpips`` wheel (found with
  ``importlib.util.find_spec`` without importing the package, which needs torchvision):
  ``lin{0..4}.model.1.weight`` of shape ``[1, C, 1, 1]`` (1x1 convs without bias);
* trunk: torchvision's ``alexnet-owt-7be5be79.pth``: ``features.{0,3,6,8,10}.{weight,bias}``.
  Its ``classifier.{1,4,6}.*`` tensors (the ImageNet head, unused by LPIPS) are dropped by
  :data:`TRUNK_IGNORED`, by name.

The heads file is an old-style (pre-zip) PyTorch pickle; both are read with
:func:`gvc_jax.weights.sources.iter_torch_any`, so no pickled code runs. Without either file the
loaders raise :class:`~gvc_jax.metrics.errors.MetricUnavailable` naming what they looked for;
a file that is not the expected weights raises :class:`~gvc_jax.weights.table.ConversionError`
or :class:`~gvc_jax.weights.sources.CheckpointError`.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from gvc_jax.metrics.alexnet import ALEXNET_FILE, TORCHVISION_INDEX
from gvc_jax.metrics.errors import MetricUnavailable
from gvc_jax.weights.sources import iter_torch_any
from gvc_jax.weights.table import Rule, abstract_targets, convert, load_into

HEADS_RELPATH = os.path.join("weights", "v0.1", "alex.pth")


def _t_head(a: np.ndarray) -> np.ndarray:  # [1, C, 1, 1] -> [C]
    if a.ndim != 4 or a.shape[0] != 1 or a.shape[2:] != (1, 1):
        return a  # the shape check of the table then reports the mismatch
    return a.reshape(-1)


HEAD_RULES = [Rule(r"lin([0-4])\.model\.1\.weight", "lin{0}", _t_head)]
TRUNK_RULES = [
    Rule(rf"features\.{idx}\.{src}", f"trunk/{name}/{dst}", tf)
    for name, idx in TORCHVISION_INDEX.items()
    for src, dst, tf in (("weight", "kernel", "conv2d"), ("bias", "bias", "none"))
]
TRUNK_IGNORED = [r"classifier\.(?:1|4|6)\.(?:weight|bias)"]


# ------------------------------------------------------------------- finding files
def torch_hub_checkpoint_dirs() -> list[str]:
    """``$TORCH_HOME/hub/checkpoints``, then ``${XDG_CACHE_HOME:-~/.cache}/torch/hub/checkpoints``."""
    homes = []
    if os.environ.get("TORCH_HOME"):
        homes.append(os.environ["TORCH_HOME"])
    homes.append(os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch"))
    out = []
    for h in homes:
        d = os.path.join(os.path.expanduser(h), "hub", "checkpoints")
        if d not in out:
            out.append(d)
    return out


def alexnet_search_paths(path: str | None = None) -> list[str]:
    """Where :func:`find_alexnet_weights` looks, in order."""
    if path is not None:
        path = os.path.expanduser(os.fspath(path))
        return [os.path.join(path, ALEXNET_FILE) if os.path.isdir(path) else path]
    return [os.path.join(d, ALEXNET_FILE) for d in torch_hub_checkpoint_dirs()]


def find_alexnet_weights(path: str | None = None) -> str | None:
    """The AlexNet trunk file: ``path`` (a file, or a folder holding ``alexnet-owt-7be5be79.pth``)
    when given, else the first hit in torch's hub cache; None when absent."""
    for p in alexnet_search_paths(path):
        if os.path.isfile(p):
            return p
    return None


def find_lpips_heads() -> str | None:
    """``lpips/weights/v0.1/alex.pth`` of the installed wheel, found without importing it."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = os.path.join(loc, HEADS_RELPATH)
        if os.path.isfile(p):
            return p
    return None


# --------------------------------------------------------------------- conversion
def model_factory():
    from flax import nnx

    from gvc_jax.metrics.alexnet import LPIPSAlex
    return lambda: LPIPSAlex(rngs=nnx.Rngs(0))


def split_targets(targets: dict) -> tuple[dict, dict]:
    """(heads targets, trunk targets) of the flat model state."""
    trunk = {k: v for k, v in targets.items() if k.startswith("trunk/")}
    heads = {k: v for k, v in targets.items() if not k.startswith("trunk/")}
    return heads, trunk


def convert_lpips(alexnet_path: str, heads_path: str) -> dict[str, np.ndarray]:
    """Both files into the flat ``{path: array}`` state of ``LPIPSAlex``; raises
    :class:`~gvc_jax.weights.table.ConversionError` on any unmapped, missing or misshapen tensor."""
    heads_t, trunk_t = split_targets(abstract_targets(model_factory()))
    out = convert(iter_torch_any(heads_path), HEAD_RULES, heads_t)
    out.update(convert(iter_torch_any(alexnet_path), TRUNK_RULES, trunk_t, ignore=TRUNK_IGNORED))
    return out


# ------------------------------------------------------------------------ loaders
def load(alexnet: str | None = None):
    """A ready :class:`gvc_jax.metrics.lpips.LPIPS`: finds and converts both weight files
    (``alexnet``: the trunk file or its folder; default: torch's hub cache). Raises
    :class:`MetricUnavailable` when one is missing."""
    from gvc_jax.metrics.lpips import LPIPS

    trunk = find_alexnet_weights(alexnet)
    if trunk is None:
        looked = ", ".join(alexnet_search_paths(alexnet))
        raise MetricUnavailable(f"LPIPS needs the AlexNet trunk weights {ALEXNET_FILE}; "
                                f"not found (looked for {looked})")
    heads = find_lpips_heads()
    if heads is None:
        raise MetricUnavailable("LPIPS needs the linear heads lpips/weights/v0.1/alex.pth from "
                                "the lpips wheel; not found (pip install --no-deps lpips)")
    model = load_into(model_factory(), convert_lpips(trunk, heads))
    return LPIPS(model, trunk_path=trunk, heads_path=heads)


_CACHE: dict[tuple, object] = {}


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def lpips(ref, dist, *, alexnet: str | None = None, batch: int = 8) -> np.ndarray:
    """Per-frame LPIPS-Alex v0.1 of two uint8 [T,H,W,3] videos, float64 [T].

    The loaded model is kept per weight files. Raises :class:`MetricUnavailable` when the
    trunk or head weights are missing, ValueError on bad input.
    """
    from gvc_jax.metrics.psnr import check_video_pair

    ref, dist = check_video_pair(ref, dist)
    trunk, heads = find_alexnet_weights(alexnet), find_lpips_heads()
    key = (_file_key(trunk), _file_key(heads)) if trunk and heads else None
    model = _CACHE.get(key) if key else None
    if model is None:
        model = load(alexnet)
        _CACHE[(_file_key(model.trunk_path), _file_key(model.heads_path))] = model
    return model(ref, dist, batch=batch)
