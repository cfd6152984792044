"""LPIPS-Alex v0.1 weights -> :class:`gvc_jax.metrics.alexnet.LPIPSAlex`.

Two files, each with its own explicit table:

* heads: ``lpips/weights/v0.1/alex.pth`` shipped in the ``lpips`` wheel (found with
  ``importlib.util.find_spec`` without importing the package, which needs torchvision):
  ``lin{0..4}.model.1.weight`` of shape ``[1, C, 1, 1]`` (1x1 convs without bias);
* trunk: torchvision's ``alexnet-owt-7be5be79.pth``: ``features.{0,3,6,8,10}.{weight,bias}``.
  Its ``classifier.{1,4,6}.*`` tensors (the ImageNet head, unused by LPIPS) are dropped by
  :data:`TRUNK_IGNORED`, by name.

The heads file is an old-style (pre-zip) PyTorch pickle; :func:`iter_torch_legacy` reads that
layout with the same restricted unpickler as :func:`convert_weights.sources.iter_torch_zip`,
so no pickled code runs. :func:`iter_torch_any` picks the reader from the file's format.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
import zipfile
from typing import Iterator

import numpy as np

from convert_weights.sources import (CheckpointError, Loader, _SafeUnpickler,
                                     _StorageRef, _TORCH_STORAGE_DTYPES, _flatten_tensors,
                                     iter_torch_zip)
from convert_weights.table import Rule, abstract_targets, convert, load_into
from gvc_jax.metrics.alexnet import TORCHVISION_INDEX

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"  # torch hub names files <name>-<first 8 hex of sha256>
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


# ------------------------------------------------------------ legacy .pth reader
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _PlainUnpickler(pickle.Unpickler):
    """Header pickles hold only numbers, strings, lists and dicts: every global is refused."""

    def find_class(self, module, name):
        raise CheckpointError(f"refusing to load pickled global {module}.{name}")


class _Blobs:
    """Storage bytes by key; duck-types the ``read`` of the ZipFile that ``_LazyTensor`` uses."""

    def __init__(self):
        self.data: dict[str, bytes] = {}

    def read(self, name: str) -> bytes:
        return self.data[name]


class _LegacyUnpickler(_SafeUnpickler):
    """The zip reader's allowlist, with old-style persistent ids (storages follow the pickle)."""

    def __init__(self, f, blobs: _Blobs):
        pickle.Unpickler.__init__(self, f)
        self.zf, self.root = blobs, ""
        self.storages: dict[str, tuple[np.dtype, int]] = {}

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise CheckpointError("storage views are not supported")
        dtype = _TORCH_STORAGE_DTYPES.get(storage_type)
        if dtype is None:
            raise CheckpointError(f"unsupported storage type {storage_type!r}")
        self.storages[str(key)] = (np.dtype(dtype), int(numel))
        return _StorageRef(self.zf, str(key), dtype, int(numel))


def iter_torch_legacy(path: str) -> Iterator[tuple[str, Loader]]:
    """Yields the tensors of an old-style (``_use_new_zipfile_serialization=False``) file.

    Layout: magic, protocol and system-info pickles; the object pickle; the list of storage
    keys; then per key an int64 element count and the raw little-endian data.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    blobs = _Blobs()
    with open(path, "rb") as f:
        try:
            magic = _PlainUnpickler(f).load()
            proto = _PlainUnpickler(f).load()
            info = _PlainUnpickler(f).load()
            if magic != _LEGACY_MAGIC or proto != _LEGACY_PROTOCOL:
                raise CheckpointError("not a PyTorch checkpoint (bad magic number or protocol)")
            if not (isinstance(info, dict) and info.get("little_endian", False)):
                raise CheckpointError("big-endian checkpoints are not supported")
            up = _LegacyUnpickler(f, blobs)
            obj = up.load()
            keys = _PlainUnpickler(f).load()
            for key in keys:
                dtype, numel = up.storages[str(key)]
                head = f.read(8)
                if len(head) != 8 or int.from_bytes(head, "little", signed=True) != numel:
                    raise CheckpointError(f"storage {key} has a bad size record")
                raw = f.read(numel * dtype.itemsize)
                if len(raw) != numel * dtype.itemsize:
                    raise CheckpointError(f"storage {key} is truncated")
                blobs.data[str(key)] = raw
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except Exception as e:  # malformed stream
            raise CheckpointError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e})") from None
    for key, t in _flatten_tensors(obj):
        yield key, t.load


def iter_torch_any(path: str) -> Iterator[tuple[str, Loader]]:
    """Zip-format or old-style ``.pth``, read without running pickled code."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return iter_torch_zip(path)
    return iter_torch_legacy(path)


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
    :class:`~convert_weights.table.ConversionError` on any unmapped, missing or misshapen tensor."""
    heads_t, trunk_t = split_targets(abstract_targets(model_factory()))
    out = convert(iter_torch_any(heads_path), HEAD_RULES, heads_t)
    out.update(convert(iter_torch_any(alexnet_path), TRUNK_RULES, trunk_t, ignore=TRUNK_IGNORED))
    return out


def load_lpips(alexnet_path: str, heads_path: str):
    """An ``LPIPSAlex`` with both files' weights."""
    return load_into(model_factory(), convert_lpips(alexnet_path, heads_path))
