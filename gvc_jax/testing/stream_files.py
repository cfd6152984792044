"""Checkpoint files of random tensors written in chunks, whatever their size (docs/testing.md).

Used by :mod:`gvc_jax.testing.random_wan_full`. A :class:`RandomFill` draws each tensor row block
by row block (at most :data:`CHUNK_ELEMS` elements at a time, on the GPU when asked) from one
generator in a fixed order, and a :class:`Sink` thread writes the chunks while the next ones are
drawn:

* safetensors (:func:`write_safetensors`, :func:`write_sharded`) are written directly, header
  first, then the bytes tensor by tensor; over a size limit they are split into HF-style shards
  ``STEM-0000k-of-0000N.safetensors`` plus ``STEM.safetensors.index.json``;
* ``.pth`` files (:func:`write_pth`) are laid out by ``torch.save`` itself under
  ``torch.serialization.skip_data`` (a header-only archive with holes for the storages), then
  the holes are filled in place and the zip CRC-32 fields patched, so the file is what
  ``torch.save`` would have written and reads back with ``torch.load`` and plain ``zipfile``.

Peak host memory is a few chunks (~1 GB), whatever the model size.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import queue
import struct
import threading
import zipfile
import zlib
from typing import Callable

CHUNK_ELEMS = 1 << 26  # elements generated per step (256 MB of fp32 on the device)
_ST_DTYPE = {"bfloat16": "BF16", "float32": "F32", "float16": "F16"}


def nbytes(shape, dtype) -> int:
    return math.prod(shape) * dtype.itemsize


class RandomFill:
    """Random chunks of one component: ``stats(name, shape) -> (mean, std)`` per tensor, values
    drawn from one generator seeded with ``seed`` on ``device`` ("cpu" or "cuda"; the two give
    different streams)."""

    def __init__(self, stats: Callable, seed: int, device: str):
        import torch

        self.stats, self.device = stats, device
        self.gen = torch.Generator(device=device).manual_seed(int(seed))

    def chunks(self, name: str, shape, dtype):
        """Yields contiguous CPU uint8 views (numpy) covering the tensor row block by row block."""
        import torch

        mean, std = self.stats(name, shape)
        shape = tuple(shape) or (1,)
        row = math.prod(shape[1:])
        step = max(1, CHUNK_ELEMS // max(row, 1))
        for r0 in range(0, shape[0], step):
            rows = min(step, shape[0] - r0)
            x = torch.randn((rows, *shape[1:]), generator=self.gen, device=self.device,
                            dtype=torch.float32)
            x.mul_(std)
            if mean:
                x.add_(mean)
            x = x.to(dtype).cpu().contiguous()
            yield x.reshape(-1).view(torch.uint8).numpy()


class Sink:
    """Writes ``(offset, bytes)`` items on a background thread (file I/O and CRC-32 release the
    GIL, so generation and copies overlap with the writes). ``tag`` accumulates CRC-32s."""

    def __init__(self, path: str, mode: str):
        self.f = open(path, mode)
        self.q: queue.Queue = queue.Queue(maxsize=4)
        self.crcs: dict = {}
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                offset, arr, tag = item
                if offset is not None:
                    self.f.seek(offset)
                self.f.write(memoryview(arr))
                if tag is not None:
                    self.crcs[tag] = zlib.crc32(arr, self.crcs.get(tag, 0))
            except BaseException as e:  # surfaced by put()/close()
                self.error = e

    def put(self, arr, offset: int | None = None, tag=None):
        if self.error is not None:
            raise self.error
        self.q.put((offset, arr, tag))

    def close(self, fsync: bool = False):
        self.q.put(None)
        self.t.join()
        if self.error is None and fsync:
            self.f.flush()
            os.fsync(self.f.fileno())
        self.f.close()
        if self.error is not None:
            raise self.error


# ------------------------------------------------------------------ safetensors
def write_safetensors(path: str, entries, dtype, fill: RandomFill, fsync: bool = False) -> int:
    """Streams ``entries`` (name, shape) into one safetensors file; returns the bytes written."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in entries:
        n = nbytes(shape, dtype)
        header[name] = {"dtype": _ST_DTYPE[str(dtype).replace("torch.", "")],
                        "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    sink = Sink(path, "wb")
    try:
        sink.put(memoryview(struct.pack("<Q", len(raw)) + raw))
        for name, shape in entries:
            for arr in fill.chunks(name, shape, dtype):
                sink.put(arr)
    finally:
        sink.close(fsync)
    return 8 + len(raw) + off


def shard_plan(entries, dtype, max_bytes: int) -> list[list]:
    """Greedy split in state_dict order into shards of at most ``max_bytes`` (a tensor larger
    than that gets a shard of its own)."""
    shards, cur, size = [], [], 0
    for name, shape in entries:
        n = nbytes(shape, dtype)
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    if cur:
        shards.append(cur)
    return shards


def write_sharded(folder: str, stem: str, entries, dtype, fill: RandomFill, max_bytes: int,
                  fsync: bool = False, log: Callable[[str], None] = lambda s: None) -> int:
    """``STEM.safetensors`` in ``folder``, or HF-style shards plus ``STEM.safetensors.index.json``
    when the tensors pass ``max_bytes``; returns the tensor bytes (shards) or file bytes."""
    shards = shard_plan(entries, dtype, max_bytes)
    if len(shards) == 1:
        fname = f"{stem}.safetensors"
        n = write_safetensors(os.path.join(folder, fname), entries, dtype, fill, fsync)
        log(f"{fname} {n / 1e9:.2f} GB")
        return n
    total, weight_map = 0, {}
    for i, shard in enumerate(shards):
        fname = f"{stem}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        n = write_safetensors(os.path.join(folder, fname), shard, dtype, fill, fsync)
        log(f"{fname} {n / 1e9:.2f} GB")
        weight_map.update({name: fname for name, _ in shard})
        total += sum(nbytes(s, dtype) for _, s in shard)
    with open(os.path.join(folder, f"{stem}.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return total


# ------------------------------------------------------------------ torch .pth
class _StorageKeys(pickle.Unpickler):
    """Reads a torch.save'd flat state_dict pickle into {name: (storage key, offset, numel)}
    without importing anything (only the few globals torch writes are recognised)."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: (storage, offset, math.prod(size))
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        return pid[2]  # ('storage', type, key, location, numel)


def _layout_pth(path: str, entries, dtype) -> None:
    """``torch.save`` of the state_dict's structure, storages left as holes."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = {name: torch.empty(shape, dtype=dtype) for name, shape in entries}
    with torch.serialization.skip_data(materialize_fake_tensors=True):
        torch.save(fake, path)


def _records(path: str) -> tuple[dict, dict]:
    """{storage key: (data offset, size)} and {record name: central-directory offset}."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        infos = {zi.filename: zi for zi in zf.infolist()}
        prefix = next(n for n in infos if n.endswith("/data.pkl"))[:-len("data.pkl")]
        keys = _StorageKeys(zf.open(prefix + "data.pkl")).load()
        data = {}
        for name, (key, offset, numel) in keys.items():
            zi = infos[f"{prefix}data/{key}"]
            f.seek(zi.header_offset)
            sig, nlen, elen = struct.unpack("<I22xHH", f.read(30))
            assert sig == 0x04034B50 and offset == 0, (name, sig, offset)
            data[name] = (zi, zi.header_offset + 30 + nlen + elen)
        central, pos = {}, zf.start_dir
        for _ in range(len(infos)):
            f.seek(pos)
            fixed = f.read(46)
            sig, = struct.unpack("<I", fixed[:4])
            assert sig == 0x02014B50, "bad central directory entry"
            nlen, elen, clen = struct.unpack("<HHH", fixed[28:34])
            central[f.read(nlen).decode()] = pos
            pos += 46 + nlen + elen + clen
    return data, central


def write_pth(path: str, entries, dtype, fill: RandomFill, fsync: bool = False) -> int:
    """A ``torch.save``'d state_dict of random tensors, streamed (see the module docstring);
    returns the tensor bytes."""
    _layout_pth(path, entries, dtype)
    data, central = _records(path)
    total = 0
    sink = Sink(path, "r+b")
    try:
        for name, shape in entries:
            zi, pos = data[name]
            assert zi.file_size == nbytes(shape, dtype), name
            first = True
            for arr in fill.chunks(name, shape, dtype):
                sink.put(arr, offset=pos if first else None, tag=name)
                first = False
            total += zi.file_size
    finally:
        sink.close()
    with open(path, "r+b") as f:  # CRC-32 in the data descriptor and the central directory
        for name, (zi, pos) in data.items():
            crc = struct.pack("<I", sink.crcs.get(name, 0))
            f.seek(pos + zi.file_size)
            assert f.read(4) == b"PK\x07\x08", "expected a zip data descriptor"
            f.write(crc)
            f.seek(central[zi.filename] + 16)
            f.write(crc)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return total


def write_pth_in_memory(path: str, entries, dtype, fill: RandomFill) -> int:
    """Reference for :func:`write_pth`: materialises every tensor on the CPU and calls
    ``torch.save``."""
    import numpy as np
    import torch

    sd = {}
    for name, shape in entries:
        parts = [torch.from_numpy(np.array(a)) for a in fill.chunks(name, shape, dtype)]
        sd[name] = torch.cat(parts).view(dtype).reshape(shape)
    torch.save(sd, path)
    return sum(nbytes(s, dtype) for _, s in entries)
