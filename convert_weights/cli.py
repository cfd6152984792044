"""``gvc-convert``: checkpoint converters, one subcommand per model family.

Each entry of :data:`COMMANDS` names ``(module, function)``; the function takes the remaining
argv and returns an exit code. Modules are imported only when their subcommand runs.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "dit": ("convert_weights.dit", "cli_convert"),
    "t5": ("convert_weights.t5", "cli_convert"),
    "clip": ("convert_weights.clip", "cli_convert"),
    "vae": ("convert_weights.vae", "cli_convert"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        names = ", ".join(sorted(COMMANDS))
        print(f"usage: gvc-convert {{{names}}} ...  (gvc-convert NAME -h for help)",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func = COMMANDS[argv[0]]
    try:
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    except Exception as e:  # one-line error, exit 3 for bad input
        from gvc_jax.weights.sources import CheckpointError
        from gvc_jax.weights.table import ConversionError
        if isinstance(e, (CheckpointError, ConversionError, FileNotFoundError)):
            print(f"gvc-convert: error: {e}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
