"""Explicit ordered conversion tables: regex -> target path template + transform.

A table is a list of :class:`Rule`. For each source tensor the *first* rule
whose ``pattern`` fully matches the key is used; its ``template`` is expanded
with the regex groups (``{0}``, ``{1}``, ...) into a '/'-separated NNX state
path. A template may end in ``@{i}`` to write layer ``i`` of a stacked
parameter (blocks run with ``nnx.scan`` carry a leading layer axis).

:func:`convert` streams tensors one at a time into preallocated target arrays
and raises :class:`ConversionError` on any unmapped source key, any target
left unfilled, any layer written twice, and any shape mismatch.
:func:`fingerprint_stream` gives the :func:`fingerprint` of those arrays after
the same checks, building one target array at a time and keeping none.
:class:`Conversion` bundles one checkpoint with its table and targets; each
family module (``gvc_jax.weights.dit`` ...) builds its own with ``conversion()``.
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


def is_float(dt) -> bool:
    return np.dtype(dt).kind == "f" or str(dt) == "bfloat16"   # bfloat16's kind is 'V'


def np_dtype(dtype) -> np.dtype:
    """A NumPy dtype from a name, a NumPy/JAX dtype or scalar type (bfloat16 from ml_dtypes)."""
    if str(dtype) == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def dtype_name(dt) -> str:
    """``"float32"``, ``"bfloat16"`` ... for a dtype."""
    return "bfloat16" if str(dt) == "bfloat16" else str(np.dtype(dt))


def cast_floats(arrays: Mapping[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    """Float arrays cast to ``dtype``, others unchanged (for models whose parameters are
    always float32 but whose converted weights are stored in another dtype)."""
    dt = np_dtype(dtype)
    return {k: _cast(v, dt) for k, v in arrays.items()}


def _cast(a: np.ndarray, dt: np.dtype) -> np.ndarray:
    return a.astype(dt) if a.dtype != dt and is_float(a.dtype) else a


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


def _transformed(key: str, load: Loader, rule: Rule) -> np.ndarray:
    return rule.fn()(load())


def _check_float(key: str, arr: np.ndarray, dtype) -> None:
    if is_float(np_dtype(dtype)) and not is_float(arr.dtype):
        raise ConversionError(f"{key!r}: stored as {arr.dtype}, the model expects floats")


def _store(out: dict, path: str, layer: int | None, arr: np.ndarray, shape, dtype) -> None:
    """Writes one converted tensor: layer ``layer`` of a stacked target, or the whole target."""
    dt = np_dtype(dtype)
    if layer is not None:
        if path not in out:
            out[path] = np.empty(tuple(shape), dt)
        out[path][layer] = arr.astype(out[path].dtype, copy=False)
    else:
        out[path] = np.ascontiguousarray(arr.astype(dt, copy=False))


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
        arr = _transformed(key, load, rule)
        check.place(key, path, layer, arr.shape)
        shape, dtype = targets[path]
        _check_float(key, arr, dtype)
        _store(out, path, layer, arr, shape, dtype)
        if progress is not None:
            progress(key)
    check.finish()
    return out


def _placeholder(shape) -> np.ndarray:
    """A zero-stride int8 array of ``shape``: transforms run on it without reading data."""
    shape = tuple(int(s) for s in shape)
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape, (0,) * len(shape))


def fingerprint_stream(source: Iterable[tuple[str, Loader]], rules: list[Rule],
                       targets: Mapping[str, tuple[tuple[int, ...], object]], *,
                       ignore: Iterable[str] = (), name: str = "", cast=None,
                       progress: Callable[[str], None] | None = None) -> str:
    """``fingerprint(convert(source, ...), name)`` (with ``cast_floats(.., cast)`` between
    when ``cast`` is given), computed without keeping the converted arrays.

    The table is checked on the tensor shapes first (every error :func:`convert` raises for a
    bad mapping, a missing or mis-shaped tensor comes before any data is read); then each
    target array is built from its source tensors, hashed and dropped, in the fingerprint's
    sorted order. Peak memory is one target array (for stacked params: all its layers).
    """
    check = _Checker(rules, targets, ignore)
    plan: dict[str, list] = {}
    for key, load in source:
        hit = check.lookup(key)
        if hit is None:
            continue
        path, layer, rule = hit
        shape = getattr(load, "shape", None)
        if shape is None:            # an in-memory loader: its array is at hand
            shape = np.shape(load())
        check.place(key, path, layer, rule.fn()(_placeholder(shape)).shape)
        plan.setdefault(path, []).append((key, load, rule, layer))
    check.finish()
    h = hashlib.sha256(name.encode())
    for path in sorted(plan):        # == sorted(targets): finish() found every target filled
        shape, dtype = targets[path]
        one: dict[str, np.ndarray] = {}
        for key, load, rule, layer in plan[path]:
            arr = _transformed(key, load, rule)
            check_shape = tuple(shape)[1:] if layer is not None else tuple(shape)
            if tuple(arr.shape) != check_shape:     # the data disagrees with its header
                raise ConversionError(f"{key!r} -> {path!r}: shape {tuple(arr.shape)} after "
                                      f"transform, model expects {check_shape}")
            _check_float(key, arr, dtype)
            _store(one, path, layer, arr, shape, dtype)
            del arr
            if progress is not None:
                progress(key)
        a = one.pop(path)
        if cast is not None:
            a = _cast(a, np_dtype(cast))
        _hash_array(h, path, a)
    return h.hexdigest()


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


def _hash_array(h, path: str, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    h.update(f"{path}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.reshape(-1).view(np.uint8))  # no copy (tobytes() would double peak RSS)


def fingerprint(arrays: Mapping[str, np.ndarray], name: str = "") -> str:
    """SHA-256 over sorted (path, dtype, shape, bytes): the bitstream's model id."""
    h = hashlib.sha256(name.encode())
    for path in sorted(arrays):
        _hash_array(h, path, arrays[path])
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
        check.place(key, path, layer, rule.fn()(_placeholder(shape)).shape)
    check.finish()



# ----------------------------------------------------------------- one conversion
@dataclasses.dataclass
class Conversion:
    """One checkpoint into one model's flat params, as a family module's ``conversion()``
    builds it: the source tensors, the ordered table, the model's targets, the fingerprint's
    name and the stored dtype.

    :meth:`run` converts (``(arrays, fingerprint)``); :meth:`fingerprint` gives the same
    fingerprint by :func:`fingerprint_stream`, keeping no converted array. ``cast``: the
    targets are float32 and float arrays are cast to ``dtype`` afterwards (the VAE, whose
    parameters are always float32).
    """
    source: list
    rules: list[Rule]
    targets: Mapping[str, tuple[tuple[int, ...], object]]
    name: str
    dtype: np.dtype                 # stored dtype of the converted float arrays
    source_dtype: np.dtype          # the checkpoint's own (dominant) float dtype
    ignore: tuple[str, ...] = ()
    cast: bool = False
    what: str = "the weights"       # progress-bar label

    def _count(self) -> int:
        ign = [re.compile(p) for p in self.ignore]
        return sum(not any(r.fullmatch(k) for r in ign) for k, _ in self.source)

    def run(self, progress: bool = False) -> tuple[dict[str, np.ndarray], str]:
        """``(arrays, fingerprint)``; ``progress`` shows a bar on stderr."""
        from gvc_jax.weights.progress import bar

        with bar(self._count(), f"converting {self.what}", progress) as tick:
            arrays = convert(self.source, self.rules, self.targets, ignore=self.ignore,
                             progress=tick)
        if self.cast:
            arrays = cast_floats(arrays, self.dtype)
        return arrays, fingerprint(arrays, name=self.name)

    def fingerprint(self, progress: bool = False) -> str:
        """What :meth:`run` returns as the fingerprint, computed read-only."""
        from gvc_jax.weights.progress import bar

        with bar(self._count(), f"fingerprinting {self.what}", progress) as tick:
            return fingerprint_stream(self.source, self.rules, self.targets,
                                      ignore=self.ignore, name=self.name,
                                      cast=self.dtype if self.cast else None, progress=tick)
