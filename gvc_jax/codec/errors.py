"""Error classes the CLI maps to exit codes (docs/design.md §5)."""


class UsageError(ValueError):
    """Bad options or an unknown config (exit 2)."""


class ModelMismatchError(ValueError):
    """The bitstream was made with another model or weights (exit 3)."""
