"""A progress bar for conversions (tqdm on stderr), and checkpoint dtype helpers."""
from __future__ import annotations

import contextlib
import sys
from collections import Counter

import numpy as np


@contextlib.contextmanager
def bar(total: int, desc: str, enabled: bool):
    """Yields a per-item ``tick(key)`` callback; a no-op unless ``enabled``."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="tensor", file=sys.stderr, leave=False,
              dynamic_ncols=True) as pb:
        yield lambda key: pb.update(1)


def dominant_float_dtype(items) -> np.dtype:
    """The float dtype holding most elements of ``(key, TensorRef)`` pairs: converted arrays
    keep the checkpoint's own precision."""
    count: Counter = Counter()
    for _, ref in items:
        if np.issubdtype(ref.dtype, np.floating) or str(ref.dtype) == "bfloat16":
            count[ref.dtype] += int(np.prod(ref.shape))
    return count.most_common(1)[0][0] if count else np.dtype(np.float32)


def bf16_or_f32(items) -> str:
    """``"bfloat16"`` for a checkpoint stored mostly in bfloat16, else ``"float32"``: the
    stored dtype of the text and image encoders' converted weights."""
    return "bfloat16" if str(dominant_float_dtype(items)) == "bfloat16" else "float32"


def jnp_dtype(name: str):
    import jax.numpy as jnp

    try:
        return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[str(name)]
    except KeyError:
        raise ValueError(f"unknown compute dtype {name!r} (float32, bfloat16)") from None


def base_dtype(name: str) -> str:
    """The float dtype a compute dtype name runs its non-quantised parts in: ``"bfloat16"``
    for ``"fp8"`` (only the DiT's blocks compute in fp8, docs/fp8.md), else ``name``."""
    return "bfloat16" if str(name) == "fp8" else str(name)
