"""Error class of the video I/O layer (docs/design.md §5: exit code 3 'bad input')."""
from __future__ import annotations


class VideoIOError(ValueError):
    """A video file or folder is unreadable, unsupported, empty, or cannot be written."""
