"""Converted-weights cache (docs/weights.md, "Cache").

The first load of a checkpoint converts it (tensor by tensor, with a progress bar) and stores
the converted arrays, in the checkpoint's own dtype, as an orbax checkpoint under
``<cache>/weights/<family>-<fingerprint>/``. Later loads read that folder instead of the
checkpoint. A small index maps the source files' identity (absolute path, size and modification
time of every file read) to the fingerprint, so a cached load never reads the source; touching
or replacing a file makes a new key, hence a fresh conversion. ``<cache>`` is ``--cache-dir``,
``$GVC_CACHE_DIR``, ``$XDG_CACHE_HOME/gvc_jax`` or ``~/.cache/gvc_jax``.

Writes are atomic: the checkpoint is written to a temporary folder and renamed into place, and
the index entry is written last; an unreadable entry is converted again, never trusted.

A family module describes what its folder loader reads as an :class:`Entry`; :func:`load`
gives its arrays (cached or converted), :func:`fingerprint` only its fingerprint, from the
index or by a read-only pass over the checkpoint that writes nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable

import numpy as np

from gvc_jax.fileutil import track_temp, untrack_temp, write_bytes_atomic

CACHE_VERSION = 1


def cache_root(cache_dir: str | None = None) -> str:
    if cache_dir:
        return os.path.abspath(os.path.expanduser(cache_dir))
    env = os.environ.get("GVC_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gvc_jax")


def source_key(family: str, files: list[str], extra: str = "") -> str:
    """Identity of a checkpoint's files: path, size and mtime of each (no content read)."""
    items = []
    for f in sorted(os.path.abspath(p) for p in files):
        st = os.stat(f)
        items.append([f, st.st_size, st.st_mtime_ns])
    blob = json.dumps([CACHE_VERSION, family, extra, items]).encode()
    return hashlib.sha256(blob).hexdigest()


def _index_path(root: str, key: str) -> str:
    return os.path.join(root, "weights", "index", key + ".json")


def _entry_dir(root: str, family: str, fp: str) -> str:
    return os.path.join(root, "weights", f"{family}-{fp}")


def lookup(family: str, files: list[str], cache_dir: str | None = None, extra: str = ""
           ) -> str | None:
    """The fingerprint of a checkpoint already in the cache, or None."""
    root = cache_root(cache_dir)
    try:
        with open(_index_path(root, source_key(family, files, extra))) as f:
            rec = json.load(f)
        fp = rec["fingerprint"]
        if os.path.isfile(os.path.join(_entry_dir(root, family, fp), "meta.json")):
            return fp
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _nest(arrays: dict) -> dict:
    tree: dict = {}
    for path, a in arrays.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = a
    return tree


def _flatten(tree: dict, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    for k, v in tree.items():
        p = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            _flatten(v, p, out)
        else:
            out[p] = np.asarray(v)
    return out


def save_arrays(arrays: dict, folder: str, meta: dict | None = None) -> None:
    """Orbax checkpoint of the flat arrays at ``folder/params`` (plus ``folder/meta.json``)."""
    import orbax.checkpoint as ocp

    os.makedirs(folder, exist_ok=True)
    with ocp.PyTreeCheckpointer() as ckptr:
        ckptr.save(os.path.join(os.path.abspath(folder), "params"), _nest(arrays))
    if meta is not None:
        with open(os.path.join(folder, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)


def load_arrays(folder: str) -> dict:
    import orbax.checkpoint as ocp

    with ocp.PyTreeCheckpointer() as ckptr:
        tree = ckptr.restore(os.path.join(os.path.abspath(folder), "params"))
    return _flatten(tree)


def _labelled(convert: Callable[[], tuple[dict, str]], label: str):
    """``convert`` whose table errors name the checkpoint (the tables only know tensor names)."""
    from gvc_jax.weights.table import ConversionError

    def run():
        try:
            return convert()
        except ConversionError as e:
            raise ConversionError(f"{label}: {e}") from None
    return run


def _write_entry(entry: str, arrays: dict, meta: dict, what: str,
                 log: Callable[[str], None] | None) -> None:
    """``arrays`` as the cache folder ``entry``: written to a temporary folder beside it and
    renamed into place (its ``meta.json`` is what marks it complete)."""
    if log:
        log(f"caching the {what} weights in {entry}")
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(entry)[:40] + "-",
                           dir=os.path.dirname(entry))
    track_temp(tmp)
    try:
        save_arrays(arrays, tmp, meta)
        shutil.rmtree(entry, ignore_errors=True)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        untrack_temp(tmp)


def cached_convert(family: str, files: list[str], convert: Callable[[], tuple[dict, str]], *,
                   cache_dir: str | None | bool = None, extra: str = "",
                   log: Callable[[str], None] | None = None, label: str | None = None
                   ) -> tuple[dict, str, dict]:
    """``(arrays, fingerprint, info)``: from the cache, or ``convert()`` then cached.

    ``cache_dir=False`` bypasses the cache. ``info`` says where the arrays came from and how
    long it took (``{"source": "cache"|"converted", "seconds": ...}``). ``label`` (the checkpoint
    path) prefixes conversion errors.
    """
    t0 = time.perf_counter()
    convert = _labelled(convert, label or os.path.dirname(os.path.abspath(files[0])))
    if cache_dir is False:
        arrays, fp = convert()
        return arrays, fp, {"source": "converted", "seconds": time.perf_counter() - t0,
                            "cached": False}
    root = cache_root(cache_dir)
    key = source_key(family, files, extra)
    fp = lookup(family, files, cache_dir, extra)
    if fp is not None:
        try:
            arrays = load_arrays(_entry_dir(root, family, fp))
            return arrays, fp, {"source": "cache", "seconds": time.perf_counter() - t0}
        except Exception as e:  # noqa: BLE001 - a damaged entry is rebuilt, never trusted
            if log:
                log(f"cached {family} weights unreadable ({type(e).__name__}); converting again")
    arrays, fp = convert()
    info = {"source": "converted", "seconds": time.perf_counter() - t0}
    entry = _entry_dir(root, family, fp)
    try:
        if not os.path.isfile(os.path.join(entry, "meta.json")):
            t1 = time.perf_counter()
            _write_entry(entry, arrays, {"family": family, "fingerprint": fp,
                                         "files": [os.path.abspath(f) for f in files]},
                         f"converted {family}", log)
            info["cache_write_seconds"] = time.perf_counter() - t1
        os.makedirs(os.path.dirname(_index_path(root, key)), exist_ok=True)
        write_bytes_atomic(_index_path(root, key),
                           json.dumps({"fingerprint": fp, "family": family}).encode())
        info["cached"] = True
    except OSError as e:  # a read-only or full disk costs the reuse, never the result
        info["cached"] = False
        if log:
            log(f"could not cache the {family} weights ({e})")
    return arrays, fp, info


# ------------------------------------------------------------------ entries
@dataclasses.dataclass
class Entry:
    """One checkpoint of a download folder as the cache knows it: the family and architecture
    name (``extra``) and the files that key it, the path that labels its errors, the
    architecture ``cfg`` and ``conversion()``, which reads the checkpoint's tensor list and
    returns its :class:`gvc_jax.weights.table.Conversion`."""
    family: str
    files: list[str]
    extra: str
    label: str
    cfg: Any
    conversion: Callable[[], Any]


def load(entry: Entry, *, cache_dir: str | None | bool = None,
         log: Callable[[str], None] | None = None, progress: bool = False
         ) -> tuple[dict, str, dict]:
    """``(arrays, fingerprint, info)`` of an entry, from the cache or converted then cached
    (see :func:`cached_convert`)."""
    return cached_convert(entry.family, entry.files, lambda: entry.conversion().run(progress),
                          cache_dir=cache_dir, extra=entry.extra, log=log, label=entry.label)


def fingerprint(entry: Entry, *, cache_dir: str | None | bool = None,
                log: Callable[[str], None] | None = None, progress: bool = False) -> str:
    """The fingerprint :func:`load` returns for ``entry``, writing nothing: the index's when the
    checkpoint is cached (``cache_dir=False`` skips the index), else computed by
    :meth:`Conversion.fingerprint <gvc_jax.weights.table.Conversion.fingerprint>`."""
    if cache_dir is not False:
        fp = lookup(entry.family, entry.files, cache_dir, entry.extra)
        if fp is not None:
            return fp
    if log:
        log(f"fingerprinting the {entry.family} weights of {entry.label} (not in the cache)")
    return _labelled(lambda: (None, entry.conversion().fingerprint(progress)), entry.label)()[1]


def load_derived(entry: Entry, rule: str, derive: Callable[[dict], dict], *,
                 cache_dir: str | None | bool = None, log: Callable[[str], None] | None = None,
                 progress: bool = False) -> tuple[dict, str, dict]:
    """``(derive(arrays), fingerprint, info)`` for an entry: arrays computed from its converted
    ones by the deterministic ``rule`` (e.g. the DiT's fp8 quantisation), cached as an entry of
    their own, ``<cache>/weights/<family>-<rule>-<fingerprint>/``, keyed by the source's
    fingerprint and the rule. ``fingerprint`` stays the source's (that of the converted
    arrays). A cached derived entry is read without reading the converted one; otherwise the
    converted arrays come from :func:`load` (cached or converted) and ``derive`` may consume
    them. ``cache_dir=False`` derives afresh and writes nothing."""
    t0 = time.perf_counter()
    family = f"{entry.family}-{rule}"
    if cache_dir is not False:
        root = cache_root(cache_dir)
        fp = lookup(entry.family, entry.files, cache_dir, entry.extra)
        folder = None if fp is None else _entry_dir(root, family, fp)
        if folder is not None and os.path.isfile(os.path.join(folder, "meta.json")):
            try:
                arrays = load_arrays(folder)
                return arrays, fp, {"source": "cache", "rule": rule,
                                    "seconds": time.perf_counter() - t0}
            except Exception as e:  # noqa: BLE001 - a damaged entry is rebuilt, never trusted
                if log:
                    log(f"cached {family} weights unreadable ({type(e).__name__}); "
                        "deriving again")
    arrays, fp, info = load(entry, cache_dir=cache_dir, log=log, progress=progress)
    t1 = time.perf_counter()
    derived = derive(arrays)
    del arrays
    info = {**info, "rule": rule, "derive_seconds": time.perf_counter() - t1}
    if cache_dir is not False:
        folder = _entry_dir(cache_root(cache_dir), family, fp)
        try:
            _write_entry(folder, derived, {"family": family, "source_fingerprint": fp,
                                           "rule": rule}, family, log)
            info["derived_cached"] = True
        except OSError as e:  # a read-only or full disk costs the reuse, never the result
            info["derived_cached"] = False
            if log:
                log(f"could not cache the {family} weights ({e})")
    info["seconds"] = time.perf_counter() - t0
    return derived, fp, info
