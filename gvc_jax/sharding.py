"""Sharding the Wan DiT over devices with ``jax.sharding`` from one rules table (docs/sharding.md).

The model names axes *logically*: parameters carry ``out_sharding`` metadata with names such as
``("embed", "heads")`` and activations are constrained with :func:`constrain` by names such as
``("act_batch", "act_tokens", "act_embed")``. A rules table (``configs/sharding.py``) maps each
logical name to mesh axes; nothing inside the layers names a mesh axis.

* :func:`make_mesh` builds a mesh from devices and a config's ``mesh_shape``;
* :func:`validate` rejects tables that cannot work (unknown names, unknown mesh axes, heads
  not divisible by the tensor/head split, a mesh axis used twice, parameter dims that do not
  divide);
* :func:`shard_model` places a split model state (or a :class:`~gvc_jax.codec.codec_model.CodecModel`,
  or a module) on the mesh. The placed Variables also carry the mesh and the rules as metadata,
  so the DiT activates the rules by itself when it is traced: the codec's jitted
  ``encode_gop`` / ``decode_gop`` take the placed state unchanged, and because the metadata is
  part of the state's tree structure, a different mesh or table is a different jit cache entry;
* :func:`activate` is the explicit context manager for direct calls (it is what the model
  enters when it finds the metadata).

With no active rules, or a mesh of one device, :func:`constrain` returns its argument and
nothing changes: the unsharded code paths trace exactly as before.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from typing import Any, Iterator, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "context", "tensor")
HEAD_NAMES = ("heads", "act_heads", "act_attn_heads")

# Variable metadata keys written by shard_model (flax's own keys: nnx.get_partition_spec then
# resolves the logical names of a placed state by itself).
RULES_KEY = "sharding_rules"
MESH_KEY = "mesh"

Rules = tuple  # ((logical name, mesh axis | tuple of mesh axes | None), ...)


class ShardingError(ValueError):
    """A rules table, mesh or state that cannot be used together."""


# ------------------------------------------------------------------ rules tables
def as_rules(rules) -> Rules:
    """A hashable rules tuple from a config name, a config (``.rules``), a mapping or pairs."""
    if isinstance(rules, str):
        from configs.sharding import get_config
        rules = get_config(rules).rules
    if hasattr(rules, "rules") and not isinstance(rules, Mapping):
        rules = rules.rules
    items = rules.items() if isinstance(rules, Mapping) else rules
    out, seen = [], set()
    for pair in items:
        if len(pair) != 2:
            raise ShardingError(f"a rule is a (logical name, mesh axes) pair, got {pair!r}")
        name, axes = pair
        if name in seen:
            raise ShardingError(f"logical name {name!r} has two rules")
        seen.add(name)
        if isinstance(axes, (list, tuple)):
            axes = tuple(axes) if len(axes) > 1 else (axes[0] if axes else None)
        out.append((str(name), axes))
    return tuple(out)


def _axes(v) -> tuple[str, ...]:
    return () if v is None else (tuple(v) if isinstance(v, tuple) else (v,))


def logical_to_mesh(names: Sequence[str | None], rules) -> PartitionSpec:
    """The ``PartitionSpec`` of logical axis ``names`` under ``rules`` (strict: a name the table
    does not map is an error; ``None`` stays replicated; a mesh axis may appear once)."""
    table = dict(as_rules(rules))
    spec, used = [], set()
    for n in names:
        if n is None:
            spec.append(None)
            continue
        if n not in table:
            raise ShardingError(f"logical axis {n!r} has no rule in the sharding table")
        ax = _axes(table[n])
        if used & set(ax):
            raise ShardingError(f"mesh axis {sorted(used & set(ax))} used twice in {tuple(names)}")
        used |= set(ax)
        spec.append(None if not ax else (ax[0] if len(ax) == 1 else ax))
    return PartitionSpec(*spec)


def axis_size(mesh: Mesh, entry) -> int:
    """Devices along one ``PartitionSpec`` entry (1 for ``None``)."""
    return math.prod(mesh.shape[a] for a in _axes(entry))


# ------------------------------------------------------------------ meshes
def make_mesh(shape=None, devices: Sequence | None = None,
              axes: Sequence[str] = MESH_AXES) -> Mesh:
    """A mesh over ``devices`` (default: all) with one size per axis of ``axes``.

    ``shape``: a config (``.mesh_shape``), a config name, a tuple with one entry per axis, or a
    ``{axis: size}`` mapping (missing axes 1). One entry may be -1: the remaining devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    if isinstance(shape, str):
        from configs.sharding import get_config
        shape = get_config(shape)
    if shape is not None and hasattr(shape, "mesh_shape") and not isinstance(shape, Mapping):
        axes = tuple(shape.mesh_axes)
        shape = tuple(shape.mesh_shape)
    axes = tuple(axes)
    if shape is None:
        shape = (len(devices),) + (1,) * (len(axes) - 1)
    if isinstance(shape, Mapping):
        unknown = set(shape) - set(axes)
        if unknown:
            raise ShardingError(f"mesh axes {sorted(unknown)} are not among {axes}")
        shape = tuple(int(shape.get(a, 1)) for a in axes)
    shape = [int(s) for s in shape]
    if len(shape) != len(axes):
        raise ShardingError(f"mesh shape {tuple(shape)} does not match axes {axes}")
    if shape.count(-1) > 1:
        raise ShardingError(f"mesh shape {tuple(shape)}: at most one -1")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest < 1 or len(devices) % rest:
            raise ShardingError(f"mesh shape {tuple(shape)} does not fit {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // rest
    if math.prod(shape) != len(devices):
        raise ShardingError(f"mesh shape {dict(zip(axes, shape))} needs {math.prod(shape)} "
                            f"devices, got {len(devices)}")
    try:
        from jax.experimental import mesh_utils
        grid = mesh_utils.create_device_mesh(tuple(shape), devices)
    except Exception:  # noqa: BLE001 - any topology the helper does not know: plain order
        grid = np.array(devices, dtype=object).reshape(shape)
    return Mesh(grid, axes)


# ------------------------------------------------------------------ validation
def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def logical_names(state) -> dict[str, tuple | None]:
    """``{path: logical names or None}`` for every Variable of a state / module."""
    if isinstance(state, nnx.Module):
        state = nnx.state(state)
    out = {}
    for keys, leaf in nnx.to_flat_state(state):
        meta = leaf.get_metadata() if _is_var(leaf) else {}
        out["/".join(map(str, keys))] = meta.get("out_sharding")
    return out


def validate(rules, mesh=None, *, num_heads: int | None = None, state=None,
             dims: Mapping[str, int] | None = None) -> Rules:
    """Checks a rules table and returns it as a tuple; raises :class:`ShardingError`.

    ``mesh``: a ``Mesh`` or an ``AbstractMesh`` (only its axis sizes are read), or None to check
    the table and the state's names alone.

    * every mesh axis named exists in ``mesh`` (when given) and no logical name is unknown to
      ``configs.sharding`` (a typo would silently replicate);
    * the mesh size of ``heads``, ``act_heads`` and ``act_attn_heads`` divides ``num_heads``
      (whole heads per device);
    * ``act_attn_q`` and ``act_attn_heads`` do not share a mesh axis;
    * ``dims``: ``{logical name: size}`` that must divide by its mesh size (e.g. ``embed``);
    * ``state``: every parameter has logical names, of its rank, all in the table, and each
      dimension divides by its mesh size.
    """
    from configs.sharding import LOGICAL_NAMES

    rules = as_rules(rules)
    table = dict(rules)
    unknown = sorted(set(table) - set(LOGICAL_NAMES))
    if unknown:
        raise ShardingError(f"unknown logical names {unknown}; known: {', '.join(LOGICAL_NAMES)}")
    missing = sorted(set(LOGICAL_NAMES) - set(table))
    if missing:
        raise ShardingError(f"the sharding table has no rule for {missing} (map them to None to "
                            "replicate)")
    if mesh is not None:
        for name, ax in rules:
            bad = [a for a in _axes(ax) if a not in mesh.shape]
            if bad:
                raise ShardingError(f"rule {name!r} -> {ax!r}: mesh axes {bad} are not in the "
                                    f"mesh {dict(mesh.shape)}")
        logical_to_mesh(("act_batch", "act_attn_q", "act_attn_heads"), rules)
        if num_heads is not None:
            for name in HEAD_NAMES:
                n = axis_size(mesh, table[name])
                if num_heads % n:
                    raise ShardingError(
                        f"{num_heads} heads do not divide over {n} devices ({name!r} -> "
                        f"{table[name]!r} on mesh {dict(mesh.shape)}): choose a tensor/head "
                        f"split that divides {num_heads}")
        for name, size in (dims or {}).items():
            n = axis_size(mesh, table[name])
            if size % n:
                raise ShardingError(f"{name!r} of size {size} does not divide over {n} devices")
    if state is not None:
        _check_state(state, rules, mesh)
    return rules


def _check_state(state, rules, mesh):
    if isinstance(state, nnx.Module):
        state = nnx.state(state)
    for keys, leaf in nnx.to_flat_state(state):
        if not isinstance(leaf, nnx.Param):
            continue
        path = "/".join(map(str, keys))
        names = leaf.get_metadata().get("out_sharding")
        shape = tuple(leaf.get_value().shape)
        if names is None:
            raise ShardingError(f"parameter {path!r} has no logical axis names")
        if len(names) != len(shape):
            raise ShardingError(f"parameter {path!r}: names {names} for shape {shape}")
        spec = logical_to_mesh(names, rules)
        if mesh is not None:
            for d, e in zip(shape, spec):
                if d % axis_size(mesh, e):
                    raise ShardingError(f"parameter {path!r} {shape}: dim {d} ({names}) does "
                                        f"not divide over {e!r} ({axis_size(mesh, e)} devices)")


def _num_heads(obj) -> int | None:
    for node in ([] if obj is None else [obj, getattr(obj, "dit", None)]):
        n = getattr(node, "num_heads", None)
        if isinstance(n, int):
            return n
    return None


# ------------------------------------------------------------------ activation context
@dataclasses.dataclass(frozen=True)
class Active:
    mesh: Mesh
    rules: Rules

    def spec(self, names) -> PartitionSpec:
        return logical_to_mesh(names, self.rules)


_local = threading.local()


def current() -> Active | None:
    """The active (mesh, rules), or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def activate(mesh: Mesh | None, rules) -> Iterator[Active | None]:
    """Activates ``rules`` on ``mesh`` while tracing/running the model, so :func:`constrain`
    resolves. ``mesh=None`` deactivates (the unsharded path).

    Note: jit caches traces by the arguments' structure, not by this context. Calls through the
    codec's jitted functions should pass a state from :func:`shard_model` (whose metadata is part
    of the cache key); use this directly for eager calls or freshly jitted functions.
    """
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    act = None if mesh is None else Active(mesh, validate(rules, mesh))
    stack.append(act)
    try:
        yield act
    finally:
        stack.pop()


def _active_of_variable(v) -> Active | None:
    meta = v.get_metadata()
    mesh, rules = meta.get(MESH_KEY), meta.get(RULES_KEY)
    if isinstance(mesh, Mesh) and rules:
        return Active(mesh, rules)
    return None


@contextlib.contextmanager
def model_rules(module) -> Iterator[Active | None]:
    """Enters the rules a placed state carries (see :func:`shard_model`), unless a context is
    already active; a no-op for an unplaced model."""
    stack = getattr(_local, "stack", None)
    if stack:  # an explicit activate() (or an outer call) decides
        yield stack[-1]
        return
    found = None
    for _, node in nnx.iter_graph(module):
        if _is_var(node):
            found = _active_of_variable(node)
            break
    if found is None:
        yield None
        return
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(found)
    try:
        yield found
    finally:
        stack.pop()


def spec(names) -> PartitionSpec | None:
    """The mesh ``PartitionSpec`` of logical ``names`` under the active rules, else None."""
    act = current()
    return None if act is None else act.spec(names)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """``with_sharding_constraint`` of ``x`` by logical axis ``names``; returns ``x`` itself
    when no rules are active or the mesh has one device."""
    act = current()
    if act is None or act.mesh.size == 1:
        return x
    if len(names) != x.ndim:
        raise ShardingError(f"names {tuple(names)} for an array of shape {x.shape}")
    return jax.lax.with_sharding_constraint(x, NamedSharding(act.mesh, act.spec(names)))


# ------------------------------------------------------------------ placing states
def partition_specs(state, rules):
    """A tree like ``state`` (Variables kept) whose values are mesh ``PartitionSpec``s;
    Variables without logical names are replicated."""
    rules = as_rules(rules)

    def f(v):
        names = v.get_metadata().get("out_sharding") if _is_var(v) else None
        ps = PartitionSpec() if names is None else logical_to_mesh(names, rules)
        return v.replace(ps) if _is_var(v) else ps

    return jax.tree.map(f, state, is_leaf=_is_var)


def shard_state(state, mesh: Mesh, rules, *, num_heads: int | None = None):
    """``state`` placed on ``mesh`` by its logical names; every Variable also gets the mesh and
    the rules as metadata (the model activates them when traced). Validated first."""
    rules = validate(rules, mesh, num_heads=num_heads, state=state)

    def f(v):
        if not _is_var(v):
            return jax.device_put(v, NamedSharding(mesh, PartitionSpec()))
        names = v.get_metadata().get("out_sharding")
        ps = PartitionSpec() if names is None else logical_to_mesh(names, rules)
        out = v.replace(jax.device_put(v.get_value(), NamedSharding(mesh, ps)))
        out.set_metadata(**{MESH_KEY: mesh, RULES_KEY: rules})
        return out

    return jax.tree.map(f, state, is_leaf=_is_var)


def shard_model(model, mesh: Mesh, rules, *, num_heads: int | None = None) -> Any:
    """The state of ``model`` placed on ``mesh`` by ``rules`` (a table, config or its name).

    ``model``: a :class:`~gvc_jax.codec.codec_model.CodecModel` (its ``.state``), an ``nnx.Module``
    (split here) or an ``nnx.State``. The result replaces the state in the codec's jitted calls,
    unchanged: ``encode_gop(codec.graphdef, shard_model(codec, mesh, rules), cond, ...)``.
    Heads are checked against ``num_heads``, by default the model's own where it has one (a
    WanDiT or WanVelocity; a bare state carries no head count).
    """
    module = None
    if isinstance(model, nnx.Module):
        module, state = model, nnx.state(model)
    elif hasattr(model, "state") and hasattr(model, "graphdef"):
        module, state = getattr(model, "module", None), model.state
    else:
        state = model
    heads = _num_heads(module) if num_heads is None else num_heads
    return shard_state(state, mesh, rules, num_heads=heads)


def put_replicated(tree, mesh: Mesh):
    """Plain arrays (conditioning, latents) replicated on ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def abstract_state(state, mesh: Mesh, rules, *, num_heads: int | None = None):
    """The abstract twin of :func:`shard_state`: every array of ``state`` (arrays or
    ``ShapeDtypeStruct``s, e.g. from ``nnx.eval_shape``) becomes a ``ShapeDtypeStruct`` carrying
    the ``NamedSharding`` its logical names give, and every Variable the mesh and rules
    metadata. No memory is allocated, so ``mesh`` may hold compile-only devices (a TPU topology
    described on a CPU host, docs/fit.md). Validated first."""
    rules = validate(rules, mesh, num_heads=num_heads, state=state)

    def f(v):
        if not _is_var(v):
            return jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=NamedSharding(mesh, PartitionSpec()))
        names = v.get_metadata().get("out_sharding")
        ps = PartitionSpec() if names is None else logical_to_mesh(names, rules)
        x = v.get_value()
        out = v.replace(jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, ps)))
        out.set_metadata(**{MESH_KEY: mesh, RULES_KEY: rules})
        return out

    return jax.tree.map(f, state, is_leaf=_is_var)


def abstract_replicated(tree, sharding_):
    """``ShapeDtypeStruct``s of ``tree``'s arrays placed by ``sharding_`` (a ``Sharding``, e.g.
    replicated on a mesh or one device)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_),
                        tree)
