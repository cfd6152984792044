"""The official Wan code (PyPI ``wan22``, package ``wan``) module by module, for references.

The package's ``__init__`` pulls in the whole pipeline stack (torchvision, CUDA calls at import
time). The installed package is never edited: :func:`load_wan22` registers empty parent packages
so that ``wan.modules.<name>`` can be imported on its own, stubs ``torchvision.transforms``
(referenced by the CLIP module, never used by the code paths here) and lets
``torch.cuda.current_device`` answer 0 while a module is being imported (``t5.py`` calls it in a
default argument). ``wan22`` is installed with ``pip install --no-deps wan22==2.2.11``
(docs/testing.md).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

from gvc_jax.testing.deps import require

# What the official modules import besides the package itself.
MODULES = ("torch", "diffusers", "transformers", "einops", "ftfy", "wan")


def _package_dir() -> str:
    if "wan" in sys.modules and getattr(sys.modules["wan"], "__path__", None):
        return list(sys.modules["wan"].__path__)[0]
    require("the official Wan modules need", MODULES)
    spec = importlib.util.find_spec("wan")
    return list(spec.submodule_search_locations)[0]


def _stub_package(name: str, path: str) -> None:
    if name in sys.modules:
        return
    mod = types.ModuleType(name)
    mod.__path__ = [path]
    sys.modules[name] = mod


def _stub_torchvision() -> None:
    try:
        import torchvision.transforms  # noqa: F401
        return
    except Exception:
        pass
    try:  # transformers caches this probe; answer it before the stub exists
        from transformers.utils import import_utils
        import_utils.is_torchvision_available()
    except Exception:
        pass
    for name in ("torchvision", "torchvision.transforms"):
        sys.modules.pop(name, None)
    import importlib.machinery as machinery

    tv = types.ModuleType("torchvision")
    tv.__spec__ = machinery.ModuleSpec("torchvision", None)
    tr = types.ModuleType("torchvision.transforms")
    tr.__spec__ = machinery.ModuleSpec("torchvision.transforms", None)

    def _missing(*a, **k):
        raise RuntimeError("torchvision is stubbed by gvc_jax.testing.wan22")

    for attr in ("Compose", "Normalize", "Resize", "ToTensor", "CenterCrop", "InterpolationMode"):
        setattr(tr, attr, _missing)
    tv.transforms = tr
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tr


def load_wan22(module: str):
    """Returns ``wan.modules.<module>`` (e.g. ``"model"``, ``"vae2_1"``, ``"t5"``,
    ``"animate.clip"``) imported without the package ``__init__``; raises
    :class:`~gvc_jax.testing.deps.MissingDependency` when wan22 or what it imports is missing."""
    root = _package_dir()
    import torch

    _stub_package("wan", root)
    _stub_package("wan.modules", os.path.join(root, "modules"))
    if module.startswith("animate"):
        _stub_package("wan.modules.animate", os.path.join(root, "modules", "animate"))
    _stub_torchvision()
    saved = torch.cuda.current_device
    torch.cuda.current_device = lambda: 0
    try:
        return importlib.import_module(f"wan.modules.{module}")
    finally:
        torch.cuda.current_device = saved
