"""What every ``gvc`` subcommand shares: exit codes, the parser class, common options."""
from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_BAD_INPUT = 0, 1, 2, 3


class Usage(Exception):
    """A usage error found by the command line itself (exit 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise Usage(message)


def add_common(p):
    p.add_argument("--debug", action="store_true", help="show tracebacks on error")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--progress", action="store_true",
                   help="progress bars even when stderr is not a terminal")


def placement(a):
    from gvc_jax.codec.placement import Placement
    return Placement(offload=a.offload, shard=a.shard)


def cache_dir(a):
    return False if a.no_cache else a.cache_dir


def log(a):
    return None if a.quiet else (lambda s: print(f"gvc: {s}", file=sys.stderr, flush=True))


def add_model_options(p, placement: bool = True):
    """--dtype and the caches; ``placement``: also --offload/--shard (one GOP on this process's
    devices: not for ``gvc batch``, which replicates the model per device)."""
    from configs.sharding import NAMES as SHARDING_TABLES
    from gvc_jax.codec.params import DTYPES
    from gvc_jax.codec.placement import OFFLOAD

    p.add_argument("--dtype", choices=DTYPES, help="compute dtype of the model (default: "
                   "bfloat16 on GPU/TPU, float32 on CPU; decoding: the stream's; fp8: the Wan "
                   "DiT's linear layers in float8, for Hopper GPUs, docs/fp8.md)")
    p.add_argument("--cache-dir", help="cache of converted weights and prompt contexts "
                                       "(default $GVC_CACHE_DIR or ~/.cache/gvc_jax)")
    p.add_argument("--no-cache", action="store_true", help="convert the weights afresh and "
                                                           "write no cache")
    if not placement:
        return
    p.add_argument("--offload", choices=OFFLOAD, default="auto",
                   help="park the DiT's weights in host memory while the VAE and CLIP run, "
                        "for smaller GPUs (auto: when they take over half the GPU's memory)")
    p.add_argument("--shard", metavar="TABLE", choices=SHARDING_TABLES,
                   help="run each GOP across all local devices with this sharding table "
                        f"({', '.join(SHARDING_TABLES)}; docs/sharding.md)")


def check_output(path: str) -> None:
    from gvc_jax.codec.errors import UsageError

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: output folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder, expected a file name")
