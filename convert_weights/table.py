"""Explicit ordered conversion tables: regex -> target path template + transform.

A table is a list of :class:`Rule`. For each source tensor the *first* rule
whose ``pattern`` fully matches the key is used; its ``template`` is expanded
with the regex groups (``{0}``, ``{1}``, ...) into a '/'-separated NNX state
path. A template may end in ``@{i}`` to write layer ``i`` of a stacked
parameter (blocks run with ``nnx.scan`` carry a leading layer axis).

:func:`convert` streams tensors one at a time into preallocated target arrays
and raises :class:`ConversionError` on any unmapped source key, any target
left unfilled, any layer written twice, and any shape mismatch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Callable, Iterable, Mapping

import ml_dtypes
import numpy as np

from convert_weights.sources import Loader


class ConversionError(ValueError):
    """The checkpoint does not match the conversion table or the model."""


def _t_none(a):
    return a


def _t_linear(a):  # torch Linear [out, in] -> flax kernel [in, out]
    return a.T


def _t_conv3d(a):  # torch [O, I, T, H, W] -> flax [T, H, W, I, O]
    return a.transpose(2, 3, 4, 1, 0)


def _t_conv2d(a):  # torch [O, I, H, W] -> flax [H, W, I, O]
    return a.transpose(2, 3, 1, 0)


def _t_conv1d(a):  # torch [O, I, K] -> flax [K, I, O]
    return a.transpose(2, 1, 0)


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _t_none, "linear": _t_linear, "conv3d": _t_conv3d,
    "conv2d": _t_conv2d, "conv1d": _t_conv1d,
}


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str
    template: str
    transform: str | Callable[[np.ndarray], np.ndarray] = "none"

    def fn(self):
        if callable(self.transform):
            return self.transform
        return TRANSFORMS[self.transform]


_STACK = re.compile(r"^(.*)@(\d+)$")


def map_key(key: str, rules: list[Rule]) -> tuple[str, int | None, Rule] | None:
    """Maps a source key to (target path, layer index or None, rule)."""
    for rule in rules:
        m = re.fullmatch(rule.pattern, key)
        if m:
            path = rule.template.format(*m.groups())
            s = _STACK.match(path)
            if s:
                return s.group(1), int(s.group(2)), rule
            return path, None, rule
    return None


def _np_dtype(dtype) -> np.dtype:
    if str(dtype) == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def convert(source: Iterable[tuple[str, Loader]], rules: list[Rule],
            targets: Mapping[str, tuple[tuple[int, ...], object]],
            *, stacked: Mapping[str, int] | None = None,
            ignore: Iterable[str] = (), progress: Callable[[str], None] | None = None
            ) -> dict[str, np.ndarray]:
    """Converts a stream of tensors into a flat ``{path: array}`` dict.

    Args:
      source: ``(key, loader)`` pairs, e.g. from :mod:`convert_weights.sources`.
      rules: the ordered table.
      targets: ``{path: (shape, dtype)}`` of the model's flat state, e.g. from
        :func:`abstract_targets`. For stacked params the shape includes the
        leading layer axis.
      stacked: ``{path: n_layers}`` for params with a leading layer axis;
        by default every path whose rule writes ``@i`` is taken as stacked.
      ignore: regexes of source keys deliberately dropped (documented buffers).
    """
    ignore_re = [re.compile(p) for p in ignore]
    out: dict[str, np.ndarray] = {}
    filled: dict[str, set] = {}
    unmapped: list[str] = []
    for key, load in source:
        if any(r.fullmatch(key) for r in ignore_re):
            continue
        hit = map_key(key, rules)
        if hit is None:
            unmapped.append(key)
            continue
        path, layer, rule = hit
        if path not in targets:
            raise ConversionError(f"{key!r} maps to {path!r}, which the model does not have")
        shape, dtype = targets[path]
        shape = tuple(shape)
        arr = rule.fn()(load())
        want = shape[1:] if layer is not None else shape
        if tuple(arr.shape) != want:
            raise ConversionError(
                f"{key!r} -> {path!r}: shape {tuple(arr.shape)} after transform, model expects {want}")
        if layer is not None:
            if layer >= shape[0]:
                raise ConversionError(f"{key!r}: layer {layer} out of range (model has {shape[0]})")
            if path not in out:
                out[path] = np.empty(shape, _np_dtype(dtype))
            seen = filled.setdefault(path, set())
            if layer in seen:
                raise ConversionError(f"{key!r}: layer {layer} of {path!r} written twice")
            seen.add(layer)
            out[path][layer] = arr.astype(out[path].dtype, copy=False)
        else:
            if path in out:
                raise ConversionError(f"{key!r}: {path!r} written twice")
            out[path] = np.ascontiguousarray(arr.astype(_np_dtype(dtype), copy=False))
            filled[path] = {None}
        if progress is not None:
            progress(key)
    if unmapped:
        raise ConversionError(f"{len(unmapped)} checkpoint tensor(s) match no rule, e.g. "
                              + ", ".join(repr(k) for k in unmapped[:5]))
    missing = sorted(set(targets) - set(out))
    if missing:
        raise ConversionError(f"{len(missing)} model parameter(s) not in the checkpoint, e.g. "
                              + ", ".join(repr(k) for k in missing[:5]))
    for path, seen in filled.items():
        if None in seen:
            continue
        n = tuple(targets[path][0])[0]
        if len(seen) != n:
            gaps = sorted(set(range(n)) - seen)[:5]
            raise ConversionError(f"{path!r}: layers {gaps} missing from the checkpoint")
    return out


# ----------------------------------------------------------------- NNX glue
def _leaf_value(leaf):
    """The array (or ShapeDtypeStruct) a flat-state leaf holds, Variable or not."""
    from flax import nnx

    return leaf.get_value() if isinstance(leaf, nnx.Variable) else leaf


def abstract_targets(module_factory: Callable[[], object]) -> dict[str, tuple[tuple[int, ...], object]]:
    """``{path: (shape, dtype)}`` of an NNX module's params, via ``nnx.eval_shape``."""
    from flax import nnx

    abstract = nnx.eval_shape(module_factory)
    state = nnx.state(abstract, nnx.Param)
    flat = {}
    for keys, leaf in nnx.to_flat_state(state):
        val = _leaf_value(leaf)
        flat["/".join(str(k) for k in keys)] = (tuple(val.shape), val.dtype)
    return flat


def load_into(module_factory: Callable[[], object], arrays: Mapping[str, np.ndarray]):
    """Builds the module abstractly and fills its params from ``arrays``."""
    import jax.numpy as jnp
    from flax import nnx

    abstract = nnx.eval_shape(module_factory)
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    leaves = []
    for keys, leaf in flat:
        path = "/".join(str(k) for k in keys)
        if path not in arrays:
            raise ConversionError(f"model state {path!r} has no converted value")
        val = _leaf_value(leaf)
        arr = jnp.asarray(arrays[path], dtype=val.dtype)
        if arr.shape != tuple(val.shape):
            raise ConversionError(f"{path!r}: converted shape {arr.shape} != model {tuple(val.shape)}")
        leaves.append((keys, leaf.replace(arr) if hasattr(leaf, "replace") else arr))
    state = nnx.from_flat_state(leaves)
    return nnx.merge(graphdef, state)


def fingerprint(arrays: Mapping[str, np.ndarray], name: str = "") -> str:
    """SHA-256 over sorted (path, dtype, shape, bytes): the bitstream's model id."""
    h = hashlib.sha256(name.encode())
    for path in sorted(arrays):
        a = np.ascontiguousarray(arrays[path])
        h.update(f"{path}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8))  # no copy (tobytes() would double peak RSS)
    return h.hexdigest()


def check_coverage(key_shapes: Iterable[tuple[str, tuple[int, ...]]], rules: list[Rule],
                   targets: Mapping[str, tuple[tuple[int, ...], object]],
                   *, ignore: Iterable[str] = ()) -> None:
    """Dry run of :func:`convert` on ``(key, shape)`` pairs, allocating nothing.

    Transforms run on zero-stride placeholder arrays, so full-size tables
    (e.g. umT5-XXL, 24 x 4096 x 10240) can be checked in a unit test. Raises
    :class:`ConversionError` exactly where :func:`convert` would.
    """
    ignore_re = [re.compile(p) for p in ignore]
    filled: dict[str, set] = {}
    unmapped = []
    for key, shape in key_shapes:
        if any(r.fullmatch(key) for r in ignore_re):
            continue
        hit = map_key(key, rules)
        if hit is None:
            unmapped.append(key)
            continue
        path, layer, rule = hit
        if path not in targets:
            raise ConversionError(f"{key!r} maps to {path!r}, which the model does not have")
        tshape = tuple(targets[path][0])
        dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), tuple(shape), (0,) * len(shape))
        got = tuple(rule.fn()(dummy).shape)
        want = tshape[1:] if layer is not None else tshape
        if got != want:
            raise ConversionError(f"{key!r} -> {path!r}: shape {got} after transform, model expects {want}")
        seen = filled.setdefault(path, set())
        if (layer in seen) or (layer is None and seen) or (layer is not None and None in seen):
            raise ConversionError(f"{key!r}: {path!r} (layer {layer}) written twice")
        if layer is not None and layer >= tshape[0]:
            raise ConversionError(f"{key!r}: layer {layer} out of range (model has {tshape[0]})")
        seen.add(layer)
    if unmapped:
        raise ConversionError(f"{len(unmapped)} checkpoint tensor(s) match no rule, e.g. "
                              + ", ".join(repr(k) for k in unmapped[:5]))
    missing = sorted(set(targets) - set(filled))
    if missing:
        raise ConversionError(f"{len(missing)} model parameter(s) not in the checkpoint, e.g. "
                              + ", ".join(repr(k) for k in missing[:5]))
    for path, seen in filled.items():
        if None not in seen and len(seen) != tuple(targets[path][0])[0]:
            raise ConversionError(f"{path!r}: layers missing from the checkpoint")
