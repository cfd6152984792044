"""Atomic file output: write to a temporary file beside the target, fsync, rename.

Nothing is left behind on failure: the temporary file is removed and an
existing target is untouched.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import Callable

# Temporary files and folders being written right now; an interrupted command removes them
# (``remove_live_temps``) before it exits, so nothing partial is left behind.
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def track_temp(path: str) -> None:
    with _LIVE_LOCK:
        _LIVE.add(path)


def untrack_temp(path: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(path)


def remove_live_temps() -> None:
    with _LIVE_LOCK:
        paths = list(_LIVE)
        _LIVE.clear()
    for p in paths:
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, another user's
        return True
    return True


def _sweep_orphans(directory: str, base: str) -> None:
    """Removes ``.BASE.PID.*.tmp`` left beside ``BASE`` by a writer that was killed (SIGKILL
    runs no handler): the next write of the same output cleans up after it."""
    prefix = f".{base}."
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for n in names:
        if not n.startswith(prefix) or ".tmp" not in n:
            continue
        pid = n[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(os.path.join(directory, n))
            except OSError:
                pass


def atomic_output(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls ``write(tmp_path)`` for a temporary file in ``path``'s folder, then renames it
    over ``path``. ``suffix`` lets writers that choose a format by extension see it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _sweep_orphans(directory, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.",
                               suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    track_temp(tmp)
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        untrack_temp(tmp)
    try:  # make the rename durable; best effort (not every file system allows it)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_output(path, write)
