"""What every ``gvc-convert`` subcommand shares: the flags, presets checked against the
checkpoint's own architecture, the output metadata, the atomic writers and the one-line errors.
The conversion itself is the family's ``conversion()`` in :mod:`gvc_jax.weights`.

Exit codes: 0 ok, 2 usage (bad flags, unknown preset or family, an output path that cannot
be used), 3 bad checkpoint (missing, unreadable, not matching its config or the preset),
130 interrupted. Every failure is one line ``gvc-convert: error: ...`` on stderr; ``--debug``
adds the traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 3, 130
DTYPES = ("float32", "bfloat16")
PROG = "gvc-convert"


class UsageError(Exception):
    """A bad flag, preset name or output path: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        raise UsageError(f"{self.prog}: {message} (see {self.prog} -h)")


def parser(prog: str, description: str, *, src_help: str, out_help: str, presets,
           layouts, config_help: str | None = None) -> argparse.ArgumentParser:
    """The flags of every subcommand: ``SRC OUT [--config] [--layout] [--dtype] [--progress]
    [--quiet] [--debug]``."""
    ap = _Parser(prog=prog, description=description)
    ap.add_argument("src", help=src_help)
    ap.add_argument("out", help=out_help)
    ap.add_argument("--config", default=None, metavar="NAME",
                    help=config_help or ("optional preset, checked against the checkpoint's "
                                         "own config: " + ", ".join(presets)))
    ap.add_argument("--layout", default="auto", choices=("auto", *layouts))
    ap.add_argument("--dtype", choices=DTYPES, default=None,
                    help="stored parameter dtype (default: the checkpoint's own)")
    ap.add_argument("--progress", action="store_true",
                    help="progress bar even when stderr is not a terminal")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return ap


def progress_enabled(a) -> bool:
    if a.quiet:
        return False
    return bool(a.progress or sys.stderr.isatty())


def preset(get_config, name: str | None):
    """The named preset config, or None; an unknown name is a usage error."""
    if name is None:
        return None
    try:
        return get_config(name)
    except (ValueError, KeyError) as e:
        raise UsageError(str(e).strip("'\"")) from None


def _norm(v):
    return tuple(_norm(x) for x in v) if isinstance(v, (list, tuple)) else v


def check_preset(src: str, name: str, want, got, keys) -> None:
    """Raises CheckpointError (exit 3) naming every field where the preset ``want`` and the
    checkpoint's own config ``got`` differ."""
    from gvc_jax.weights.sources import CheckpointError

    diff = []
    for k in keys:
        a, b = _norm(want.get(k)), _norm(got.get(k))
        if a != b:
            diff.append(f"{k} {a!r} vs {b!r}")
    if diff:
        raise CheckpointError(f"{src}: --config {name} does not match the checkpoint's own "
                              f"architecture (preset vs checkpoint: {'; '.join(diff)})")


@contextlib.contextmanager
def naming(path: str):
    """Conversion-table errors (which only know tensor names) prefixed with the checkpoint."""
    from gvc_jax.weights.table import ConversionError

    try:
        yield
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from None


def meta(family: str, cfg, layout: str, conversion, fingerprint: str) -> dict:
    """The ``meta.json`` / safetensors metadata of one output."""
    from gvc_jax.weights.table import dtype_name

    return {"family": family, "config": cfg.name, "layout": layout, "fingerprint": fingerprint,
            "dtype": dtype_name(conversion.dtype),
            "source_dtype": dtype_name(conversion.source_dtype)}


def require(src: str) -> None:
    """A missing checkpoint path is a bad checkpoint (exit 3) named as such."""
    from gvc_jax.weights.sources import CheckpointError

    if not os.path.exists(src):
        raise CheckpointError(f"{src}: no such file or folder")


def bare_folder(src: str) -> bool:
    """A folder with no config.json or model_index.json: not a download folder, maybe the
    checkpoint files on their own."""
    return os.path.isdir(src) and not any(
        os.path.exists(os.path.join(src, f)) for f in ("config.json", "model_index.json"))


def sibling_config(path: str) -> str | None:
    """The folder whose ``config.json`` describes ``path`` (a folder, or a file next to one)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return folder if os.path.isfile(os.path.join(folder, "config.json")) else None


# ------------------------------------------------------------------ output
def is_file_output(out: str) -> bool:
    return out.endswith(".safetensors")


def check_output(out: str, *, file_only: bool = False) -> None:
    """Before any work: ``out`` must be usable (usage error otherwise). A folder output may
    replace an earlier converter output (it holds ``meta.json``) or an empty folder."""
    if file_only and not is_file_output(out):
        raise UsageError(f"{out}: the output must be a .safetensors file")
    if is_file_output(out):
        if os.path.isdir(out):
            raise UsageError(f"{out}: is a folder, expected a .safetensors file name")
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out}: exists and is not a folder (give a folder, or a name ending "
                         "in .safetensors)")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(
            os.path.join(out, "meta.json")):
        raise UsageError(f"{out}: folder exists and is not a gvc-convert output; remove it or "
                         "choose another name")


def write_output(arrays: dict, out: str, meta: dict) -> None:
    """An orbax folder (``OUT/params`` + ``OUT/meta.json``) or, for a ``.safetensors`` name,
    one file with ``meta`` as its metadata. Written to a temporary name and renamed into place:
    a failed or interrupted conversion leaves no partial output."""
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    if is_file_output(out):
        from safetensors.numpy import save_file

        from gvc_jax.fileutil import atomic_output

        atomic_output(out, lambda tmp: save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp,
            metadata={k: str(v) for k, v in meta.items()}), suffix=".safetensors")
        return
    from gvc_jax.fileutil import track_temp, untrack_temp
    from gvc_jax.weights.cache import save_arrays

    tmp = tempfile.mkdtemp(prefix=".gvc-convert-", dir=parent)
    track_temp(tmp)
    try:
        save_arrays(arrays, tmp, meta)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        untrack_temp(tmp)


def finish(arrays: dict, out: str, meta: dict) -> int:
    """Writes the output and prints the JSON report line."""
    write_output(arrays, out, meta)
    print(json.dumps({**meta, "tensors": len(arrays), "out": os.path.abspath(out)}), flush=True)
    return EXIT_OK


# ------------------------------------------------------------------ errors
def _message(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def classify(e: BaseException) -> int:
    if isinstance(e, UsageError):
        return EXIT_USAGE
    return EXIT_BAD_INPUT


def run(fn, argv) -> int:
    """Runs ``fn(argv)``; any failure becomes one ``gvc-convert: error:`` line and exit 2/3."""
    argv = list(argv or [])
    debug = "--debug" in argv
    try:
        return int(fn(argv) or 0)
    except SystemExit as e:  # argparse's -h/--help
        return e.code if isinstance(e.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the converter's last line of defence
        from gvc_jax.weights.sources import CheckpointError
        from gvc_jax.weights.table import ConversionError

        if debug:
            traceback.print_exc()
        code = classify(e)
        msg = _message(e)
        if code == EXIT_USAGE:
            msg += f" (see {PROG} -h)" if "(see" not in msg else ""
        elif not isinstance(e, (CheckpointError, ConversionError, OSError)):
            msg = f"{type(e).__name__}: {msg} (rerun with --debug for the traceback)"
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return code
