"""Lazy, code-free readers for checkpoint files.

Every reader yields ``(key, loader)`` pairs where ``loader()`` returns one
tensor as a NumPy array, so converters can stream a checkpoint tensor by
tensor and keep host memory near one copy of the weights.

* ``safetensors`` files (single, or sharded with ``*.index.json``).
* PyTorch ``.pth``/``.pt`` zip archives, read with a restricted unpickler
  that only rebuilds tensors and plain containers: no pickled code runs.
* Old-style (pre-zip) ``.pth`` files with the same unpickler
  (``iter_torch_legacy``); ``iter_torch_any`` picks the reader by format.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import pickle
import zipfile
from zlib import error as zlib_error
from typing import Callable, Iterator

import ml_dtypes
import numpy as np

Loader = Callable[[], np.ndarray]


class TensorRef:
    """A lazily read tensor: ``ref()`` reads it; ``shape`` and ``dtype`` are known up front,
    so architectures can be inferred from a checkpoint without reading its data."""
    __slots__ = ("shape", "dtype", "_load")

    def __init__(self, shape, dtype, load: Loader):
        self.shape, self.dtype, self._load = tuple(int(s) for s in shape), np.dtype(dtype), load

    def __call__(self) -> np.ndarray:
        return self._load()


def in_memory(arrays) -> list[tuple[str, TensorRef]]:
    """``(key, TensorRef)`` pairs over NumPy arrays already in memory (``{key: array}``)."""
    return [(k, TensorRef(np.shape(a), np.asarray(a).dtype, lambda a=a: np.asarray(a)))
            for k, a in arrays.items()]


def shapes(items) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of ``(key, TensorRef)`` pairs, reading no tensor data."""
    return {k: ref.shape for k, ref in items}


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or has unexpected content."""


INCOMPLETE = "an incomplete download? Download the file again"


@dataclasses.dataclass
class Checkpoint:
    """The tensors of one checkpoint, listed lazily: ``path`` (the file or folder read, or a
    name for tensors held in memory), ``layout`` (the family's name for its key scheme, e.g.
    ``"official"``) and ``tensors``, the ``(key, loader)`` pairs. A family module's ``read()``
    gives one; its ``conversion()`` takes one."""
    path: str
    layout: str
    tensors: list


# ----------------------------------------------------------------- safetensors
_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def _open_rb(path: str):
    try:
        return open(path, "rb")
    except OSError as e:  # missing, a directory, a symlink loop, no permission
        raise CheckpointError(f"{path}: cannot open ({e.strerror or type(e).__name__})") from None


def _safetensors_header(path: str) -> tuple[dict, int]:
    with _open_rb(path) as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path}: truncated safetensors header: {INCOMPLETE}")
        n = int.from_bytes(raw, "little")
        if n <= 0 or n > 100 * 2**20:
            raise CheckpointError(f"{path}: implausible safetensors header size {n}")
        if 8 + n > os.fstat(f.fileno()).st_size:
            raise CheckpointError(f"{path}: truncated safetensors header ({n} bytes declared): "
                                  f"{INCOMPLETE}")
        try:
            header = json.loads(f.read(n))
        except (ValueError, RecursionError) as e:
            raise CheckpointError(f"{path}: corrupt safetensors header ({type(e).__name__}: "
                                  f"{str(e)[:100]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header, 8 + n


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _tensor_entry(path: str, key: str, info, data_bytes: int):
    """``(dtype, shape, start, stop)`` of one header entry, checked against the data size."""
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: tensor {key!r} has a malformed header entry")
    dtype = _ST_DTYPES.get(info.get("dtype")) if isinstance(info.get("dtype"), str) else None
    if dtype is None:
        raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {info.get('dtype')}")
    shape, offs = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        raise CheckpointError(f"{path}: tensor {key!r} has a malformed shape {shape!r}"[:300])
    if not (isinstance(offs, list) and len(offs) == 2 and all(_is_count(o) for o in offs)
            and offs[0] <= offs[1]):
        raise CheckpointError(f"{path}: tensor {key!r} has malformed data_offsets {offs!r}"[:300])
    start, stop = offs
    if stop > data_bytes:
        raise CheckpointError(f"{path}: tensor {key!r} runs past the end of the file: "
                              f"{INCOMPLETE}")
    numel = 1
    for s in shape:
        numel *= s
    if numel * np.dtype(dtype).itemsize != stop - start:
        raise CheckpointError(f"{path}: tensor {key!r} of shape {tuple(shape)} and dtype "
                              f"{info['dtype']} does not match its {stop - start} data bytes")
    return dtype, tuple(shape), start, stop


def iter_safetensors(path: str) -> Iterator[tuple[str, Loader]]:
    """Yields the tensors of one ``.safetensors`` file, memory-mapped."""
    header, base = _safetensors_header(path)
    size = os.path.getsize(path)
    for key, info in header.items():
        if key == "__metadata__":
            continue
        dtype, shape, start, stop = _tensor_entry(path, key, info, size - base)

        def load(start=start, stop=stop, shape=shape, dtype=dtype):
            mm = np.memmap(path, dtype=np.uint8, mode="r", offset=base + start,
                           shape=(stop - start,))
            return np.asarray(mm).view(dtype).reshape(shape)

        yield key, TensorRef(shape, dtype, load)


def safetensors_files(folder_or_file: str, prefix: str = "diffusion_pytorch_model") -> list[str]:
    """Resolves a folder (sharded or not) or a file to a list of shard paths."""
    if os.path.isfile(folder_or_file):
        return [folder_or_file]
    if not os.path.isdir(folder_or_file):
        raise CheckpointError(f"{folder_or_file}: no such file or folder")
    index = [f for f in os.listdir(folder_or_file) if f.endswith(".safetensors.index.json")]
    if index:
        files = read_index(os.path.join(folder_or_file, sorted(index)[0]))
    else:
        files = sorted(f for f in os.listdir(folder_or_file) if f.endswith(".safetensors"))
        pref = [f for f in files if f.startswith(prefix)]
        files = pref or files
    if not files:
        raise CheckpointError(f"{folder_or_file}: no .safetensors files found")
    paths = [os.path.join(folder_or_file, f) for f in files]
    for p in paths:
        if os.path.islink(p) and not os.path.exists(p):
            raise CheckpointError(f"{p}: a broken symlink or a symlink loop")
        if not os.path.isfile(p):
            what = "listed in the index is missing" if index else "is not a regular file"
            raise CheckpointError(f"{p}: shard {what}")
    return paths


def read_index(path: str) -> list[str]:
    """The shard file names of a ``*.safetensors.index.json``, checked (plain names in the
    index's own folder, nothing else)."""
    try:
        with _open_rb(path) as f:
            raw = f.read(64 * 2**20 + 1)
        if len(raw) > 64 * 2**20:
            raise CheckpointError(f"{path}: index larger than 64 MiB")
        d = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({type(e).__name__})") from None
    wm = d.get("weight_map") if isinstance(d, dict) else None
    if not isinstance(wm, dict) or not wm:
        raise CheckpointError(f"{path}: no weight_map object in the index")
    files = set()
    for k, v in wm.items():
        if not isinstance(v, str) or not v.endswith(".safetensors") or os.path.basename(v) != v \
                or v in (".", "..") or "\\" in v or "\x00" in v:
            raise CheckpointError(f"{path}: tensor {k!r} maps to a bad shard name {v!r}"[:300])
        files.add(v)
    return sorted(files)



def iter_safetensors_folder(folder_or_file: str, prefix: str = "diffusion_pytorch_model"
                            ) -> Iterator[tuple[str, Loader]]:
    for path in safetensors_files(folder_or_file, prefix):
        yield from iter_safetensors(path)


# --------------------------------------------------------- torch zip (.pth)
_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageRef:
    def __init__(self, zf: zipfile.ZipFile, name: str, dtype, numel: int):
        self.zf, self.name, self.dtype, self.numel = zf, name, dtype, numel


class _LazyTensor:
    def __init__(self, storage: _StorageRef, offset: int, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def load(self) -> np.ndarray:
        st = self.storage
        where = getattr(st.zf, "filename", None) or "checkpoint"
        nbytes = st.numel * np.dtype(st.dtype).itemsize
        # The view must lie inside the storage: size, stride and offset come from the pickle.
        if st.numel < 0 or self.offset < 0 or len(self.stride) != len(self.size) or \
                any(n < 0 for n in self.size) or any(s < 0 for s in self.stride):
            raise CheckpointError(f"{where}: tensor view of storage {st.name} is malformed")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if all(self.size) and last >= st.numel:
            raise CheckpointError(f"{where}: tensor of shape {self.size} does not fit its storage "
                                  f"{st.name} of {st.numel} elements")
        info = getattr(st.zf, "getinfo", None)
        try:
            if info is not None and info(st.name).file_size != nbytes:  # checked before reading
                raise CheckpointError(f"{where}: storage {st.name} holds "
                                      f"{info(st.name).file_size} bytes, expected {nbytes}")
            raw = st.zf.read(st.name)
        except CheckpointError:
            raise
        except (KeyError, OSError, EOFError, zipfile.BadZipFile, zlib_error) as e:
            raise CheckpointError(f"{where}: storage {st.name} is unreadable "
                                  f"({type(e).__name__})") from None
        flat = np.frombuffer(raw, dtype=st.dtype)
        if flat.size < st.numel:
            raise CheckpointError(f"{where}: storage {st.name} is truncated")
        if not all(self.size):
            return np.zeros(self.size, st.dtype)
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.array(view)  # own the memory; the zip buffer is freed


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds tensors and containers only; any other global is refused."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }

    def __init__(self, f, zf: zipfile.ZipFile, root: str):
        super().__init__(f)
        self.zf, self.root = zf, root

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return name
        if module == "torch" and name in ("bfloat16", "float32", "float16", "float64"):
            return name
        raise CheckpointError(f"refusing to load pickled global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        dtype = _TORCH_STORAGE_DTYPES.get(storage_type)
        if dtype is None:
            raise CheckpointError(f"unsupported storage type {storage_type!r}")
        return _StorageRef(self.zf, f"{self.root}/data/{key}", dtype, int(numel))


def _flatten_tensors(obj, prefix="") -> Iterator[tuple[str, _LazyTensor]]:
    if isinstance(obj, _LazyTensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten_tensors(v, f"{prefix}.{k}" if prefix else str(k))


def _one_line(e: Exception) -> str:
    """An exception as one line of at most 200 characters."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def iter_torch_zip(path: str, subtree: str | None = None) -> Iterator[tuple[str, Loader]]:
    """Yields tensors of a PyTorch zip checkpoint without executing pickle code.

    Nested dicts are flattened with '.'; ``subtree`` selects e.g. ``"state_dict"``.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(f"{path}: not a PyTorch zip checkpoint (old-style files are "
                              "read by iter_torch_any)") from None
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise CheckpointError(f"{path}: no data.pkl inside the archive")
    root = pkl[0].rsplit("/", 1)[0] if "/" in pkl[0] else ""
    try:
        with zf.open(pkl[0]) as f:
            obj = _SafeUnpickler(f, zf, root).load()
        items = list(_flatten_tensors(obj[subtree] if subtree is not None and isinstance(obj, dict)
                                      and subtree in obj else obj))
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # malformed archive or pickle stream (RecursionError included)
        raise CheckpointError(f"{path}: corrupt checkpoint ({_one_line(e)})") from None
    if subtree is not None and not (isinstance(obj, dict) and subtree in obj):
        raise CheckpointError(f"{path}: no {subtree!r} entry")
    for key, t in items:
        yield key, TensorRef(t.size, t.storage.dtype, t.load)


def resolve_checkpoint(path: str, layout: str, official_file: str, subfolder: str,
                       what: str) -> tuple[str, str]:
    """Finds a single-file official checkpoint or a diffusers ``subfolder`` under ``path``.

    Returns ``(path, layout)``: a folder holding ``official_file`` gives that file
    ("official"); a repo root with ``subfolder`` or a folder of safetensors gives the
    folder ("diffusers"); a file is taken as given (``.safetensors`` -> diffusers).
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, official_file)) and layout in ("auto", "official"):
            return os.path.join(path, official_file), "official"
        if os.path.isdir(os.path.join(path, subfolder)):
            path = os.path.join(path, subfolder)
        if layout in ("auto", "diffusers"):
            return path, "diffusers"
    elif os.path.isfile(path):
        if layout == "auto":
            layout = "diffusers" if path.endswith(".safetensors") else "official"
        return path, layout
    raise CheckpointError(f"{path}: no {what} checkpoint found (expected {official_file}, "
                          f"a {subfolder}/ folder or .safetensors files)")


# ------------------------------------------------------------ old-style .pth reader
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _PlainUnpickler(pickle.Unpickler):
    """Header pickles hold only numbers, strings, lists and dicts: every global is refused."""

    def find_class(self, module, name):
        raise CheckpointError(f"refusing to load pickled global {module}.{name}")


class _Blobs:
    """Storage bytes by key; duck-types the ``read`` of the ZipFile that ``_LazyTensor`` uses."""

    def __init__(self, filename: str | None = None):
        self.data: dict[str, bytes] = {}
        self.filename = filename

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
    blobs = _Blobs(path)
    size = os.path.getsize(path)
    with _open_rb(path) as f:
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
                if numel * dtype.itemsize > size - f.tell():  # before reading (allocating)
                    raise CheckpointError(f"storage {key} is truncated: {INCOMPLETE}")
                raw = f.read(numel * dtype.itemsize)
                if len(raw) != numel * dtype.itemsize:
                    raise CheckpointError(f"storage {key} is truncated: {INCOMPLETE}")
                blobs.data[str(key)] = raw
            items = list(_flatten_tensors(obj))
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except Exception as e:  # malformed stream (RecursionError included)
            raise CheckpointError(f"{path}: corrupt checkpoint ({_one_line(e)})") from None
    for key, t in items:
        yield key, TensorRef(t.size, t.storage.dtype, t.load)


def iter_torch_any(path: str) -> Iterator[tuple[str, Loader]]:
    """Zip-format or old-style ``.pth``, read without running pickled code. A zip archive
    whose end (the central directory) is missing is reported as a likely incomplete
    download."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return iter_torch_zip(path)
    with _open_rb(path) as f:
        if f.read(4) == b"PK\x03\x04":
            raise CheckpointError(f"{path}: a zip archive without its end "
                                  f"({os.path.getsize(path)} bytes): {INCOMPLETE}")
    return iter_torch_legacy(path)
