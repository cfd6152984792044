"""Progress of long commands on stderr (docs/cli.md, "Progress").

On a terminal (or with ``--progress``) every GOP phase gets a tqdm bar with the step total,
rate and time left; piped output gets one line per GOP phase; ``--quiet`` prints nothing.
"""
from __future__ import annotations

import sys


class CodecProgress:
    """``on_gop(i, n, what)`` and ``on_step(step)`` callbacks for the codec loops."""

    def __init__(self, mode: str, steps: int | None = None):
        if mode not in ("bar", "lines", "off"):
            raise ValueError(mode)
        self.mode, self.steps, self._bar = mode, steps, None

    @classmethod
    def for_cli(cls, quiet: bool, force: bool, steps: int | None = None) -> "CodecProgress":
        if quiet:
            return cls("off")
        return cls("bar" if force or sys.stderr.isatty() else "lines", steps)

    def line(self, text: str) -> None:
        """One message (above the bar when there is one)."""
        if self.mode == "off":
            return
        if self.mode == "bar":
            from tqdm.auto import tqdm

            tqdm.write(f"gvc: {text}", file=sys.stderr)
        else:
            sys.stderr.write(f"gvc: {text}\n")
            sys.stderr.flush()

    def phase(self, label: str) -> None:
        """A new run of ``steps`` steps: a fresh bar, or one line when piped."""
        self.close()
        if self.mode == "lines":
            self.line(label)
        elif self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.steps, desc=label, unit="step", file=sys.stderr,
                             dynamic_ncols=True, leave=False)

    def on_gop(self, i: int, n: int, what: str) -> None:
        self.phase(f"GOP {i + 1}/{n} {what}")

    def on_step(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step + 1 - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @property
    def callbacks(self):
        if self.mode == "off":
            return None, None
        return self.on_gop, self.on_step
