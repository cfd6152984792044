"""The ffmpeg binary shipped in imageio-ffmpeg: where it is, its version, its encoders, and
running it with one-line errors.

The one place that runs ffmpeg as a subprocess: the classical baselines
(:mod:`gvc_jax.eval.baselines`, docs/baselines.md), the eval inputs' colour conversion
(:mod:`gvc_jax.eval.inputs`) and the VVC anchors (:mod:`gvc_jax.codec.anchors`, docs/anchors.md)
call :func:`run_ffmpeg`. Every failure (no binary, cannot start, timeout, non-zero exit) is an
:class:`FFmpegError` whose message is one line naming what was being done.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess

__all__ = ["FFmpegError", "ffmpeg_exe", "ffmpeg_version", "has_encoder", "run_ffmpeg"]

QUERY_TIMEOUT_S = 60.0     # '-version' and '-encoders'


class FFmpegError(RuntimeError):
    """ffmpeg is missing, lacks an encoder, cannot start, timed out or failed."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's ffmpeg binary."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise FFmpegError(f"no ffmpeg binary: {_one_line(str(e)) or type(e).__name__} "
                          "(pip install imageio-ffmpeg)") from None


def _lines(text: str) -> list[str]:
    """Non-empty lines without ffmpeg's '@ 0x55...' context addresses."""
    return [re.sub(r" @ 0x[0-9a-fA-F]+", "", s).strip()[:300] for s in text.splitlines() if s.strip()]


def _one_line(text: str) -> str:
    lines = _lines(text)
    return lines[-1] if lines else ""


def _spawn(args: list[str], *, what: str, cwd: str | None = None,
           stdin: bytes | memoryview | None = None, env: dict | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess:
    """``ffmpeg args`` to completion; FFmpegError if it cannot start or runs past ``timeout``."""
    try:
        exe = ffmpeg_exe()
    except FFmpegError as e:
        raise FFmpegError(f"{what}: {e}") from None
    full_env = None if env is None else {**os.environ, **env}
    try:
        return subprocess.run([exe, *args], cwd=cwd, input=stdin, capture_output=True,
                              check=False, env=full_env, timeout=timeout,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FFmpegError(f"{what}: ffmpeg took more than {timeout:g} s") from None
    except OSError as e:
        raise FFmpegError(f"{what}: cannot run ffmpeg ({e})") from None


def _query(*args: str) -> str:
    """stdout of ``ffmpeg -hide_banner args`` (whatever its exit status)."""
    r = _spawn(["-hide_banner", *args], what=f"ffmpeg {' '.join(args)}", timeout=QUERY_TIMEOUT_S)
    return r.stdout.decode(errors="replace")


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The version string of the ffmpeg build, e.g. 'n9.0.2-17-g2a571b6068-20260930'."""
    first = _query("-version").strip().splitlines()[:1]
    words = first[0].split() if first else []
    if len(words) < 3 or words[:2] != ["ffmpeg", "version"]:
        raise FFmpegError(f"unexpected 'ffmpeg -version' output: {first[0] if first else ''!r}")
    return words[2]


@functools.lru_cache(maxsize=1)
def _encoders() -> frozenset[str]:
    names = set()
    for line in _query("-encoders").splitlines():
        parts = line.split()
        # rows look like ' V....D libx264   description'; the legend above them has '=' in it
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and "=" not in line:
            names.add(parts[1])
    return frozenset(names)


def has_encoder(name: str) -> bool:
    """Whether this ffmpeg build has the encoder ``name`` ('-encoders' is read once)."""
    return name in _encoders()


def run_ffmpeg(args: list[str], *, what: str, cwd: str | None = None,
               stdin: bytes | memoryview | None = None, env: dict | None = None,
               timeout: float | None = None) -> bytes:
    """Runs ``ffmpeg args`` (in ``cwd``, with ``env`` added to the environment, ``stdin`` piped
    in or no stdin at all) and returns its stdout.

    Any failure is an FFmpegError naming ``what``; a non-zero exit gives ffmpeg's first and last
    stderr lines (the last says how ffmpeg ended, the first is often the cause)."""
    r = _spawn(args, what=what, cwd=cwd, stdin=stdin, env=env, timeout=timeout)
    if r.returncode != 0:
        lines = _lines(r.stderr.decode(errors="replace")) or [f"exit status {r.returncode}"]
        detail = lines[-1] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        raise FFmpegError(f"{what}: ffmpeg failed: {detail}")
    return r.stdout
