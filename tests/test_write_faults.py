"""Faults while writing (issue 14, part 3): no partial ``.gvc``, video or weights-cache file is
left behind and an existing output is intact when the output folder is read-only, the disk fills
up mid-write, or the process is killed.

Tests run as root here, which ignores permission bits, so read-only and full file systems are
simulated by fault injection (EROFS / ENOSPC raised by the file-system calls the writers use).
"""
from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gvc_jax import fileutil
from gvc_jax.bitstream import container, idx_chunk
from gvc_jax.io import write_video
from gvc_jax.weights import cache as wcache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD = b"previous contents, must survive\n"
HEADER = {
    "format": "gvc", "version": 1,
    "model": {"config": "gaussian", "fingerprint": "0123456789abcdef" * 4},
    "codec": {"mode": "t2v", "K": 32, "M": [2], "steps": 4, "sde_steps": 3, "g_scale": 3.0,
              "shift": 1.0, "seed": 0, "gop_frames": 4, "latent_frames": 1},
    "source": {"frames": 4, "height": 16, "width": 16, "fps": [25, 1]},
    "coded": {"frames": 4, "height": 16, "width": 16},
    "gops": [{"index": 0, "start": 0, "frames": 4}],
}
FRAMES = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)


def _write_gvc(p):
    container.write_gvc(p, HEADER, [idx_chunk(0, b"\x00" * 5000)])


def _write_npy(p):
    write_video(p, FRAMES, 25)


def _write_y4m(p):
    write_video(p, FRAMES, 25)


WRITERS = [("a.gvc", _write_gvc), ("v.npy", _write_npy), ("v.y4m", _write_y4m)]


def _only(folder, name):
    """The folder holds exactly ``name`` with the old bytes: no temp file, no partial output."""
    assert sorted(os.listdir(folder)) == [name], os.listdir(folder)
    with open(os.path.join(folder, name), "rb") as f:
        assert f.read() == OLD


def _oserror(code):
    def fail(*a, **k):
        raise OSError(code, os.strerror(code))
    return fail


class _FullDisk:
    """A file object that accepts ``room`` bytes, then fails with ENOSPC (the disk is full)."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, b):
        b = bytes(b)
        if len(b) > self.room:
            self.f.write(b[:self.room])
            self.f.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("name, write", WRITERS)
@pytest.mark.parametrize("where", ["mkstemp", "replace"])
def test_read_only_folder(tmp_path, monkeypatch, name, write, where):
    (tmp_path / name).write_bytes(OLD)
    if where == "mkstemp":   # the folder refuses new files
        monkeypatch.setattr(fileutil.tempfile, "mkstemp", _oserror(errno.EROFS))
    else:                    # the final rename is refused
        monkeypatch.setattr(fileutil.os, "replace", _oserror(errno.EROFS))
    with pytest.raises(OSError) as e:
        write(str(tmp_path / name))
    assert e.value.errno == errno.EROFS
    _only(tmp_path, name)


@pytest.mark.parametrize("name, write", WRITERS)
@pytest.mark.parametrize("room", [0, 100, 300])
def test_disk_full_mid_write(tmp_path, monkeypatch, name, write, room):
    (tmp_path / name).write_bytes(OLD)
    real_open = open

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return _FullDisk(f, room) if "w" in mode or "a" in mode else f

    # every writer opens its temp file through builtins.open (np.save and the y4m writer too)
    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(OSError) as e:
        write(str(tmp_path / name))
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC
    _only(tmp_path, name)


def test_weights_cache_disk_full(tmp_path, monkeypatch):
    """A full disk costs the cache entry, never the result, and leaves no partial entry."""
    src = tmp_path / "w.safetensors"
    src.write_bytes(b"x")
    arrays = {"a": np.arange(1000, dtype=np.float32)}
    real_save = wcache.save_arrays

    def save_then_fail(arr, folder, meta=None):
        real_save(arr, folder, meta)                    # a whole entry written to the temp folder
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(wcache, "save_arrays", save_then_fail)
    cdir = tmp_path / "cache"
    out, fp, info = wcache.cached_convert("dit", [str(src)], lambda: (arrays, "f" * 64),
                                          cache_dir=str(cdir))
    assert info["cached"] is False and fp == "f" * 64
    np.testing.assert_array_equal(out["a"], arrays["a"])
    left = [os.path.join(r, f) for r, ds, fs in os.walk(cdir) for f in fs + ds]
    assert not [p for p in left if os.path.basename(p).startswith(".tmp")], left
    assert wcache.lookup("dit", [str(src)], str(cdir)) is None
    assert not [p for p in left if os.path.isfile(p)], left     # nothing partial at all


def _gvcs(folder):
    return sorted(f for f in os.listdir(folder) if ".gvc" in f)


def test_killed_in_the_write_phase(tmp_path):
    """SIGKILL while the .gvc bytes are being written (the write is slowed down and signals
    when it is half done): the old file is intact and no partial .gvc appears."""
    out = tmp_path / "a.gvc"
    out.write_bytes(OLD)
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import time, numpy as np
        from gvc_jax import fileutil
        from gvc_jax.bitstream import container, idx_chunk
        real_open = open
        class Slow:
            def __init__(self, f): self.f = f
            def write(self, b):
                self.f.write(b[:len(b) // 2]); self.f.flush()
                real_open({str(ready)!r}, "w").close()
                time.sleep(60)
            def __enter__(self): return self
            def __exit__(self, *e): self.f.close()
        fileutil.open = lambda p, m="r", *a, **k: Slow(real_open(p, m, *a, **k))
        container.write_gvc({str(out)!r}, {HEADER!r}, [idx_chunk(0, b"\\0" * 100000)])
    """)
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        t0 = time.time()
        while not ready.exists():
            assert p.poll() is None and time.time() - t0 < 60, "writer did not start"
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.read_bytes() == OLD
    names = _gvcs(tmp_path)
    assert "a.gvc" in names
    # SIGKILL runs no handler, so the killed writer's hidden temp file stays until the next
    # write of the same output, which removes it (the writer's PID is in its name)
    from gvc_jax.bitstream import container, idx_chunk
    container.write_gvc(str(out), HEADER, [idx_chunk(0, b"\0" * 10)])
    assert _gvcs(tmp_path) == ["a.gvc"]
    assert out.read_bytes() != OLD


def test_killed_at_a_random_moment(tmp_path):
    """A real `gvc compress` killed at a random moment: the old output is intact, no other
    .gvc appears (a temp file may remain only if the kill hit the microseconds of the write)."""
    src = tmp_path / "clip.npy"
    np.save(src, np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    out = tmp_path / "a.gvc"
    out.write_bytes(OLD)
    delay = random.Random(os.getpid()).uniform(1.0, 4.0)
    p = subprocess.Popen([sys.executable, "-m", "gvc_jax.cli", "compress", str(src), "-o",
                          str(out), "--config", "gaussian-fast", "--quiet"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    names = _gvcs(tmp_path)
    if p.returncode == 0:   # finished before the kill: the new file replaced the old one whole
        assert names == ["a.gvc"] and container.read_gvc(str(out))
    else:
        assert out.read_bytes() == OLD
        assert [n for n in names if not n.endswith(".tmp")] == ["a.gvc"], names
