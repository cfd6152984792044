"""The ``gvc`` command line: :func:`main` (docs/cli.md)."""
from gvc_jax.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from gvc_jax.cli.main import build_parser, main

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_BAD_INPUT"]
