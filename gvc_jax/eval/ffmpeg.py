"""The ffmpeg binary shipped in imageio-ffmpeg: where it is, its version, its encoders, and
running it with one-line errors (used by the classical baselines, docs/baselines.md)."""
from __future__ import annotations

import functools
import os
import re
import subprocess

__all__ = ["BaselineError", "ffmpeg_exe", "ffmpeg_version", "has_encoder", "run_ffmpeg"]


class BaselineError(RuntimeError):
    """ffmpeg is missing, lacks an encoder, or failed on a baseline encode or decode."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's ffmpeg binary."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise BaselineError(f"no ffmpeg binary: {_one_line(str(e)) or type(e).__name__} "
                            "(pip install imageio-ffmpeg)") from None


def _lines(text: str) -> list[str]:
    """Non-empty lines without ffmpeg's '@ 0x55...' context addresses."""
    return [re.sub(r" @ 0x[0-9a-fA-F]+", "", s).strip()[:300] for s in text.splitlines() if s.strip()]


def _one_line(text: str) -> str:
    lines = _lines(text)
    return lines[-1] if lines else ""


def _query(*args: str) -> str:
    try:
        r = subprocess.run([ffmpeg_exe(), "-hide_banner", *args], capture_output=True, timeout=60, check=False,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BaselineError(f"cannot run ffmpeg {' '.join(args)}: {e}") from None
    return r.stdout.decode(errors="replace")


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The version string of the ffmpeg build, e.g. 'n9.0.2-17-g2a571b6068-20260930'."""
    first = _query("-version").strip().splitlines()[:1]
    words = first[0].split() if first else []
    if len(words) < 3 or words[:2] != ["ffmpeg", "version"]:
        raise BaselineError(f"unexpected 'ffmpeg -version' output: {first[0] if first else ''!r}")
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


def run_ffmpeg(args: list[str], *, cwd: str, what: str, stdin: bytes | memoryview | None = None,
               env: dict | None = None) -> bytes:
    """Runs ``ffmpeg args`` in ``cwd``; returns stdout. Failure -> BaselineError naming ``what``
    and ffmpeg's last stderr line."""
    full_env = None if env is None else {**os.environ, **env}
    try:
        r = subprocess.run([ffmpeg_exe(), *args], cwd=cwd, input=stdin, capture_output=True,
                           check=False, env=full_env, stdin=None if stdin is not None else subprocess.DEVNULL)
    except OSError as e:
        raise BaselineError(f"{what}: cannot run ffmpeg ({e})") from None
    if r.returncode != 0:
        lines = _lines(r.stderr.decode(errors="replace")) or [f"exit status {r.returncode}"]
        # the last line says how ffmpeg ended; the first one is often the cause
        detail = lines[-1] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        raise BaselineError(f"{what}: ffmpeg failed: {detail}")
    return r.stdout
