"""The ``gvc`` command line (docs/cli.md, docs/design.md §5).

Exit codes: 0 ok · 1 internal error · 2 usage · 3 bad input (unreadable video, corrupt
bitstream, wrong weights). Errors are one line on stderr starting with ``gvc: error:``;
``--debug`` adds the traceback. Building the parser imports no JAX, so ``--help`` and argument
errors answer at once.
"""
from __future__ import annotations

import os
import sys
import threading
import traceback

import gvc_jax.cli.batch_cmd as batch_cmd
import gvc_jax.cli.codec_cmds as codec_cmds
import gvc_jax.cli.eval_cmd as eval_cmd
import gvc_jax.cli.fit_cmd as fit_cmd
import gvc_jax.cli.metrics_cmd as metrics_cmd
from gvc_jax.cli.common import (EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Parser,
                                Usage)

COMMANDS = {"compress": codec_cmds.cmd_compress, "decompress": codec_cmds.cmd_decompress,
            "info": codec_cmds.cmd_info, "demo": codec_cmds.cmd_demo,
            "eval": eval_cmd.cmd_eval, "batch": batch_cmd.cmd_batch,
            "metrics": metrics_cmd.cmd_metrics, "fit": fit_cmd.cmd_fit}
SEARCHING = ("compress", "eval", "demo", "batch")      # the commands that run the codebook


def build_parser() -> Parser:
    from gvc_jax import __version__

    p = Parser(prog="gvc", description="GVC generative video codec (JAX)")
    p.add_argument("--version", action="version", version=f"gvc {__version__}")
    sub = p.add_subparsers(dest="cmd", parser_class=Parser)
    codec_cmds.add_parsers(sub)
    eval_cmd.add_parser(sub)
    metrics_cmd.add_parser(sub)
    batch_cmd.add_parser(sub)
    fit_cmd.add_parser(sub)
    return p


def _classify(exc: BaseException) -> int:
    from gvc_jax.weights.sources import CheckpointError
    from gvc_jax.weights.table import ConversionError
    from gvc_jax.bitstream.errors import BitstreamError
    from gvc_jax.codec.errors import ModelMismatchError, UsageError
    from gvc_jax.io import VideoIOError

    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, (BitstreamError, ModelMismatchError, VideoIOError, CheckpointError,
                        ConversionError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def _is_tool_failure(exc: BaseException) -> bool:
    """An external tool (ffmpeg) or the system (a full or read-only disk) failed: exit 1, but
    the message says what happened; it is not the program's internal error."""
    from gvc_jax.io.ffmpeg import FFmpegError

    return isinstance(exc, (FFmpegError, OSError))


def main(argv=None) -> int:
    """The ``gvc`` command. As a process entry (``argv`` None) it also turns on JAX's persistent
    compilation cache (:mod:`gvc_jax.jitcache`); called in-process it leaves JAX's settings
    alone."""
    entry = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        a = parser.parse_args(argv)
        if entry and hasattr(a, "cache_dir"):
            from gvc_jax import jitcache
            jitcache.enable(False if getattr(a, "no_cache", False) else a.cache_dir)
        if a.cmd is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        a.argv = argv
        fn = COMMANDS[a.cmd]
        if a.cmd in SEARCHING or a.cmd == "decompress":
            from gvc_jax.codebook import ops
            from gvc_jax.models.wan.attention import forced_implementation
            try:
                ops.forced_method()
                forced_implementation()
            except ValueError as e:
                raise Usage(str(e)) from None
        if threading.current_thread() is threading.main_thread():
            from gvc_jax.interrupt import run_interruptible
            return run_interruptible(lambda: fn(a))
        return fn(a)
    except Usage as e:
        print(f"gvc: error: {e} (see gvc --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:          # --help and --version end the parser with their code
        return e.code if isinstance(e.code, int) else EXIT_OK
    except BrokenPipeError:  # e.g. `gvc info x.gvc | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        print("gvc: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last line of defence
        code = _classify(e)
        if debug:
            traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if code == EXIT_INTERNAL and not _is_tool_failure(e):
            msg = f"internal error: {type(e).__name__}: {msg} (rerun with --debug)"
        print(f"gvc: error: {msg}", file=sys.stderr)
        return code
