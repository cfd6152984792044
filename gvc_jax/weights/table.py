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

from gvc_jax.weights.sources import Loader


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


def _is_float(dt) -> bool:
    return np.dtype(dt).kind == "f" or str(dt) == "bfloat16"   # bfloat16's kind is 'V'


def _np_dtype(dtype) -> np.dtype:
    if str(dtype) == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


class _Checker:
    """The per-tensor checks shared by :func:`convert` and :func:`check_coverage`:
    mapping, target existence, transformed shape, layer range, no double writes,
    and at the end no unmapped key, no missing parameter, no missing layer."""

    def __init__(self, rules, targets, ignore):
        self.rules, self.targets = rules, targets
        self.ignore = [re.compile(p) for p in ignore]
        self.filled: dict[str, set] = {}
        self.unmapped: list[str] = []

    def lookup(self, key):
        """(path, layer, rule) for a key, or None when it is ignored or unmapped."""
        if any(r.fullmatch(key) for r in self.ignore):
            return None
        hit = map_key(key, self.rules)
        if hit is None:
            self.unmapped.append(key)
            return None
        path = hit[0]
        if path not in self.targets:
            raise ConversionError(f"{key!r} maps to {path!r}, which the model does not have")
        return hit

    def place(self, key, path, layer, got_shape):
        shape = tuple(self.targets[path][0])
        want = shape[1:] if layer is not None else shape
        if tuple(got_shape) != want:
            raise ConversionError(
                f"{key!r} -> {path!r}: shape {tuple(got_shape)} after transform, model expects {want}")
        if layer is not None and layer >= shape[0]:
            raise ConversionError(f"{key!r}: layer {layer} out of range (model has {shape[0]})")
        seen = self.filled.setdefault(path, set())
        if layer in seen or (layer is None and seen) or (layer is not None and None in seen):
            where = f"layer {layer} of {path!r}" if layer is not None else repr(path)
            raise ConversionError(f"{key!r}: {where} written twice")
        seen.add(layer)

    def finish(self):
        if self.unmapped:
            raise ConversionError(f"{len(self.unmapped)} checkpoint tensor(s) match no rule, e.g. "
                                  + ", ".join(repr(k) for k in self.unmapped[:5]))
        missing = sorted(set(self.targets) - set(self.filled))
        if missing:
            raise ConversionError(f"{len(missing)} model parameter(s) not in the checkpoint, e.g. "
                                  + ", ".join(repr(k) for k in missing[:5]))
        for path, seen in self.filled.items():
            if None in seen:
                continue
            n = tuple(self.targets[path][0])[0]
            if len(seen) != n:
                gaps = sorted(set(range(n)) - seen)[:5]
                raise ConversionError(f"{path!r}: layers {gaps} missing from the checkpoint")


def convert(source: Iterable[tuple[str, Loader]], rules: list[Rule],
            targets: Mapping[str, tuple[tuple[int, ...], object]],
            *, ignore: Iterable[str] = (), progress: Callable[[str], None] | None = None
            ) -> dict[str, np.ndarray]:
    """Converts a stream of tensors into a flat ``{path: array}`` dict.

    Args:
      source: ``(key, loader)`` pairs, e.g. from :mod:`gvc_jax.weights.sources`.
      rules: the ordered table.
      targets: ``{path: (shape, dtype)}`` of the model's flat state, e.g. from
        :func:`abstract_targets`. For stacked params (rules writing ``@i``)
        the shape includes the leading layer axis.
      ignore: regexes of source keys deliberately dropped (documented buffers).
    """
    check = _Checker(rules, targets, ignore)
    out: dict[str, np.ndarray] = {}
    for key, load in source:
        hit = check.lookup(key)
        if hit is None:
            continue
        path, layer, rule = hit
        arr = rule.fn()(load())
        check.place(key, path, layer, arr.shape)
        shape, dtype = targets[path]
        if _is_float(_np_dtype(dtype)) and not _is_float(arr.dtype):
            raise ConversionError(f"{key!r}: stored as {arr.dtype}, the model expects floats")
        if layer is not None:
            if path not in out:
                out[path] = np.empty(tuple(shape), _np_dtype(dtype))
            out[path][layer] = arr.astype(out[path].dtype, copy=False)
        else:
            out[path] = np.ascontiguousarray(arr.astype(_np_dtype(dtype), copy=False))
        if progress is not None:
            progress(key)
    check.finish()
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
    check = _Checker(rules, targets, ignore)
    for key, shape in key_shapes:
        hit = check.lookup(key)
        if hit is None:
            continue
        path, layer, rule = hit
        dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), tuple(shape), (0,) * len(shape))
        check.place(key, path, layer, rule.fn()(dummy).shape)
    check.finish()

