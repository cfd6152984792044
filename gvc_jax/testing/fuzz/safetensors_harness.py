"""Fuzz target for the safetensors header reader and the ``*.safetensors.index.json`` reader.

``TestOneInput(data)``: the first byte picks the target, the rest is the file:

* even: a ``.safetensors`` file: :func:`iter_safetensors` (header, entries) and every tensor
  read (the entries are checked against the file size, so a read is small);
* odd: an index: :func:`read_index` and :func:`safetensors_files` on a folder holding it and one
  valid shard.

A rejection must be a :class:`~gvc_jax.weights.sources.CheckpointError`; any other exception is a
crash. Run it with atheris::

    python -m gvc_jax.testing.fuzz.safetensors_harness -runs=100000 [corpus folder]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

SHARD = "model-00001-of-00001.safetensors"
_tmp: dict = {}


def _scratch() -> str:
    if "dir" not in _tmp:
        d = tempfile.mkdtemp(prefix="gvc_st_fuzz_")
        os.makedirs(os.path.join(d, "idx"))
        with open(os.path.join(d, "idx", SHARD), "wb") as f:
            f.write(seed_safetensors())
        _tmp["dir"] = d
    return _tmp["dir"]


def seed_safetensors() -> bytes:
    """A small valid file: two F32 tensors, one BF16, metadata."""
    import numpy as np

    a = np.arange(6, dtype="<f4").tobytes()
    b = np.ones(2, dtype="<f4").tobytes()
    c = b"\x80\x3f" * 3
    head = {"__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
            "c": {"dtype": "BF16", "shape": [3], "data_offsets": [32, 38]}}
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + a + b + c


def seed_index() -> bytes:
    return json.dumps({"metadata": {"total_size": 38},
                       "weight_map": {"a": SHARD, "b": SHARD, "c": SHARD}}).encode()


def seeds() -> list[bytes]:
    return [b"\x00" + seed_safetensors(), b"\x01" + seed_index()]


def check(data: bytes) -> str:
    from gvc_jax.weights import sources  # imported late: the atheris run instruments it first

    if not data:
        return "empty"
    d = _scratch()
    body = data[1:]
    if data[0] % 2 == 0:
        p = os.path.join(d, "x.safetensors")
        with open(p, "wb") as f:
            f.write(body)
        for _, ref in sources.iter_safetensors(p):
            arr = ref()
            assert arr.shape == ref.shape and arr.dtype == ref.dtype
        return "safetensors"
    p = os.path.join(d, "idx", "model.safetensors.index.json")
    with open(p, "wb") as f:
        f.write(body)
    files = sources.read_index(p)
    assert all(os.path.basename(f) == f for f in files)
    paths = sources.safetensors_files(os.path.join(d, "idx"))
    assert all(os.path.dirname(x) == os.path.join(d, "idx") for x in paths)
    return "index"


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    from gvc_jax.weights.sources import CheckpointError

    try:
        check(data)
    except CheckpointError:
        pass


if __name__ == "__main__":
    import atheris

    with atheris.instrument_imports(include=["gvc_jax.weights"]):
        import gvc_jax.weights.sources  # noqa: F401,F811
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
