"""Error class of the bitstream layer (docs/design.md §4, §5: exit code 3 'bad input')."""
from __future__ import annotations


class BitstreamError(ValueError):
    """A .gvc file or a packed payload is corrupt, truncated, over a limit or unsupported.

    Messages are one line and name the failing part, e.g. ``CRC mismatch in chunk 2 (IDX )``.
    """
