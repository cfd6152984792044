"""Atomic file output: write to a temporary file beside the target, fsync, rename.

Nothing is left behind on failure: the temporary file is removed and an
existing target is untouched.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_output(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls ``write(tmp_path)`` for a temporary file in ``path``'s folder, then renames it
    over ``path``. ``suffix`` lets writers that choose a format by extension see it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix,
                               dir=directory)
    os.close(fd)
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
