"""Where the velocity model's weights live while streams are coded (docs/cli.md, "Memory" and
"Several GPUs").

:class:`Placement` is a runtime choice, not a codec parameter: nothing of it is in the stream.

* ``offload``: ``always`` parks the weights in pinned host memory while the autoencoder and the
  image conditioner run (:class:`WeightParker`), ``never`` keeps them on the devices, ``auto``
  parks them when they take over half of the accelerator's memory. Values never change, so
  streams are byte-identical either way.
* ``shard``: a rules table of ``configs/sharding.py`` (``wan-seq``, ``wan-fsdp``, ...): the
  weights are placed over a mesh of all local devices by :func:`gvc_jax.sharding.shard_model`
  and one GOP runs across them (docs/sharding.md).
"""
from __future__ import annotations

import dataclasses

from gvc_jax.codec.errors import UsageError

OFFLOAD = ("auto", "always", "never")
AUTO_OFFLOAD_FRACTION = 0.5   # "auto" parks weights that take over half of the device memory


@dataclasses.dataclass(frozen=True)
class Placement:
    offload: str = "auto"
    shard: str | None = None

    def __post_init__(self):
        if self.offload not in OFFLOAD:
            raise UsageError(f"offload must be one of {', '.join(OFFLOAD)}, got {self.offload!r}")
        if self.shard is not None:
            from configs.sharding import NAMES
            if self.shard not in NAMES:
                raise UsageError(f"unknown sharding table {self.shard!r}; known: "
                                 f"{', '.join(NAMES)}")


def place(module, state, placement: Placement):
    """``(state, parker or None)``: ``state`` sharded as ``placement.shard`` asks (the module is
    updated to the placed arrays, so nothing keeps the unplaced copy alive) and the parker that
    offloads it, when ``placement.offload`` asks for one."""
    if placement.shard:
        from flax import nnx

        from gvc_jax import sharding
        try:
            mesh = sharding.make_mesh(placement.shard)
            state = sharding.shard_model(module, mesh, placement.shard)
        except sharding.ShardingError as e:
            raise UsageError(f"--shard {placement.shard}: {e}") from None
        nnx.update(module, state)
    parker = WeightParker(state) if _wants_offload(placement.offload, state) else None
    return state, parker


def _first_device_bytes(state) -> int:
    """Bytes of ``state`` on its first device (a shard's size for sharded arrays)."""
    import jax

    return sum(int(x.addressable_shards[0].data.nbytes) for x in jax.tree.leaves(state)
               if hasattr(x, "addressable_shards"))


def parks_weights(offload: str, weight_bytes: int, limit: int | None) -> bool:
    """The ``offload`` rule for ``weight_bytes`` of weights per device on a device that may
    hold ``limit`` bytes: ``always`` parks, ``never`` keeps, ``auto`` parks over
    :data:`AUTO_OFFLOAD_FRACTION` of a known limit. ``gvc fit`` applies it to compiled targets."""
    if offload != "auto":
        return offload == "always"
    return bool(limit) and weight_bytes > AUTO_OFFLOAD_FRACTION * limit


def _wants_offload(offload: str, state) -> bool:
    import jax

    if not jax.tree.leaves(state):
        return False
    if offload != "auto":
        return parks_weights(offload, 0, None)
    if jax.default_backend() == "cpu":      # host memory either way
        return False
    limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    return parks_weights(offload, _first_device_bytes(state), limit)


class WeightParker:
    """Moves a state's arrays to pinned host memory while the autoencoder runs, and back before
    the next velocity call. The host copy is made once (the weights never change), so parking
    again only frees the device buffers; bringing them back is one host-to-device copy per GOP
    phase. Values are unchanged, so streams are too."""

    def __init__(self, state):
        import jax

        self._device = state
        self._shardings = jax.tree.map(lambda x: x.sharding, state)
        self._host = None
        self.parks = 0

    def park(self):
        import jax

        if self._device is None:
            return self._host
        if self._host is None:
            self._host = jax.tree.map(
                lambda x: jax.device_put(x, x.sharding.with_memory_kind("pinned_host")),
                self._device)
            jax.block_until_ready(self._host)
        for x in jax.tree.leaves(self._device):
            x.delete()
        self._device = None
        self.parks += 1
        return self._host

    def unpark(self):
        import jax

        if self._device is None:
            self._device = jax.device_put(self._host, self._shardings)
        return self._device
