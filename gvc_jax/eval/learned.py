"""Loading the learned metrics (LPIPS, DISTS) once for ``gvc eval`` and ``gvc metrics``, with
one note per metric that cannot be computed (docs/metrics.md, "LPIPS", "DISTS").

A weight file that is missing leaves the metric's column empty with the reason in the notes; a
file that exists but holds other tensors is bad input (``CheckpointError``, exit 3), since the
user gave or placed it on purpose. A trunk whose SHA-256 is not the released file's is used,
with a note that its values are not comparable with published ones.
"""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass
class Learned:
    """Loaded models (None when unavailable) and the notes that explain every None."""

    lpips: Callable | None = None
    dists: Callable | None = None
    notes: dict[str, str] = dataclasses.field(default_factory=dict)


def _load_lpips(alexnet: str | None, out: Learned, log, who: str) -> None:
    from gvc_jax.metrics import MetricUnavailable
    from gvc_jax.weights.lpips import load as load_lpips
    from gvc_jax.weights.sources import CheckpointError
    from gvc_jax.weights.table import ConversionError

    try:
        out.lpips = load_lpips(alexnet=alexnet)
    except (ConversionError, CheckpointError) as e:   # a file, but not AlexNet weights
        raise CheckpointError(f"LPIPS weights: {e}") from None
    except MetricUnavailable as e:
        hint = "" if alexnet else "; give the file with --lpips-alexnet"
        out.notes["lpips"] = f"LPIPS column left empty: {e}{hint}"
        log(f"{who}: {out.notes['lpips']}")
        return
    if not out.lpips.official_trunk():
        out.notes["lpips_trunk"] = (f"{out.lpips.trunk_path} is not torchvision's released "
                                    "AlexNet (SHA-256 prefix differs): LPIPS values are not "
                                    "comparable with published ones")
        log(f"{who}: warning: {out.notes['lpips_trunk']}")


def _load_dists(vgg: str | None, out: Learned, log, who: str) -> None:
    from gvc_jax.metrics import MetricUnavailable
    from gvc_jax.weights import dists as wd
    from gvc_jax.weights.sources import CheckpointError

    trunk = wd.find_vgg16_weights(vgg)
    try:
        out.dists = wd.load_dists(vgg16=vgg)
    except MetricUnavailable as e:
        if trunk is not None and wd.find_dists_weights() is not None:
            raise CheckpointError(f"DISTS weights: {e}") from None   # present but unusable
        hint = "" if vgg else "; give the file with --dists-vgg"
        out.notes["dists"] = f"DISTS column left empty: {e}{hint}"
        log(f"{who}: {out.notes['dists']}")
        return
    if not wd.official_vgg16(out.dists.trunk_path):
        out.notes["dists_trunk"] = (f"{out.dists.trunk_path} is not torchvision's released VGG16 "
                                    "(SHA-256 prefix differs): DISTS values are not comparable "
                                    "with published ones")
        log(f"{who}: warning: {out.notes['dists_trunk']}")


def load_learned(*, alexnet: str | None = None, use_lpips: bool = True,
                 vgg: str | None = None, use_dists: bool = True,
                 log: Callable[[str], None] = lambda s: None, who: str = "gvc") -> Learned:
    """LPIPS (``alexnet``: the trunk file or folder, default torch's hub cache) and DISTS
    (``vgg``: the VGG16 trunk likewise), each skipped with a note when ``use_*`` is False."""
    out = Learned()
    if use_lpips:
        _load_lpips(alexnet, out, log, who)
    else:
        out.notes["lpips"] = "LPIPS not computed (--no-lpips)"
    if use_dists:
        _load_dists(vgg, out, log, who)
    else:
        out.notes["dists"] = "DISTS not computed (--no-dists)"
    return out
