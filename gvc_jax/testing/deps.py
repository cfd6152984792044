"""The optional PyTorch stack of :mod:`gvc_jax.testing`, and the one-line error when a part of it
is missing (docs/testing.md, "Installing").

The random Wan folders, the PyTorch GVC loop and the reference helpers need torch, diffusers,
transformers, sentencepiece and the official Wan code (PyPI ``wan22``, imported as ``wan``).
None of them is a dependency of gvc-jax itself; ``pip install -e '.[testing]'`` installs all
but ``wan22``, which goes in without its own dependencies (they pin a CUDA torch)::

    pip install --no-deps wan22==2.2.11

:func:`require` checks that modules can be imported without importing them, and raises
:class:`MissingDependency` (an ``ImportError``) whose message is one line ending in the
commands that install what is missing.
"""
from __future__ import annotations

import importlib.util
import sys

WAN22 = "wan22==2.2.11"
# The pins of setup.cfg's `testing` extra, as a pip command line.
PIP_TESTING = ("pip install torch==2.13.0 'diffusers==0.42.*' 'transformers>=5,<6' sentencepiece "
               "tokenizers einops easydict ftfy")
INSTALL = f"{PIP_TESTING} && pip install --no-deps {WAN22}"

# Import name -> distribution name, for the message.
_DIST = {"wan": "wan22"}
# What the random Wan folders import (the official modules need einops and ftfy too).
FOLDER_MODULES = ("torch", "transformers", "diffusers", "sentencepiece", "einops", "ftfy", "wan")


class MissingDependency(ImportError):
    """An optional package of :mod:`gvc_jax.testing` is not installed."""


def _importable(name: str) -> bool:
    if sys.modules.get(name) is not None:        # imported already (or stubbed, as ``wan`` is)
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):        # a parent is missing, or a broken sys.modules entry
        return False


def missing(modules) -> list[str]:
    """The distributions of ``modules`` (import names) that cannot be imported, in order."""
    return [_DIST.get(m, m) for m in modules if not _importable(m)]


def require(what: str, modules=FOLDER_MODULES) -> None:
    """Raises :class:`MissingDependency` naming the missing distributions when any of
    ``modules`` cannot be imported. ``what`` starts the message ("random Wan folders need")."""
    gone = missing(modules)
    if gone:
        raise MissingDependency(f"{what} {', '.join(_DIST.get(m, m) for m in modules)} "
                                f"(missing: {', '.join(gone)}): {INSTALL}")
