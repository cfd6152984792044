"""``gvc-convert``: checkpoint converters, one subcommand per model family.

Each entry of :data:`COMMANDS` names ``(module, function)``; the function takes the remaining
argv and returns an exit code. Modules are imported only when their subcommand runs.

The architecture comes from the checkpoint's own config files (or, where a layout ships none,
from its tensor shapes); ``--config`` is an optional preset checked against it. Parameters keep
the checkpoint's dtype unless ``--dtype`` is given. Exit codes: 0 ok, 2 usage, 3 bad checkpoint,
130 interrupted; every failure is one ``gvc-convert: error:`` line (see
:mod:`convert_weights.common`).
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

USAGE = ("usage: gvc-convert {" + ",".join(sorted(COMMANDS)) + "} SRC OUT [--config NAME] "
         "[--layout auto|official|diffusers] [--dtype float32|bfloat16]  "
         "(gvc-convert NAME -h for help)")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv:
        print(f"gvc-convert: error: name a model family ({', '.join(sorted(COMMANDS))}); "
              "see gvc-convert -h", file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        print(f"gvc-convert: error: unknown model family {argv[0]!r} (choose from "
              f"{', '.join(sorted(COMMANDS))}; see gvc-convert -h)", file=sys.stderr)
        return 2
    from convert_weights.common import run

    module, func = COMMANDS[argv[0]]
    return run(lambda rest: getattr(importlib.import_module(module), func)(rest), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
