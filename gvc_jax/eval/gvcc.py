"""GVCC's way of counting rate, for the ``gvcc`` evaluation protocol (docs/eval.md, "Protocols").

GVCC (design.md §7) reports theoretical bits, not file sizes, and kbps at 16 frames per second
whatever the source's rate:

* indices: ``ceil(log2 K) + 1`` bits per atom (index and sign), ``M`` atoms per SDE step and
  latent frame: ``sde_steps x latent_frames x M x (ceil(log2 K) + 1)`` per GOP, 960 bits per
  step and frame at K=16384, M=64. I2V's ``M_tail`` atoms are counted as ``M``, as GVCC does;
* I2V: the first frame is sent free (the anchor bytes are left out); the tail residual counts
  with its bytes;
* FLF2V: the boundary frames count with their bytes (each once);
* the header, the container framing and the prompt are not counted.

Our rows keep the honest rate (every byte of the file at the source frame rate) in ``bits``,
``bpp`` and ``kbps``; this module gives the ``bits_gvcc``, ``bpp_gvcc`` and ``kbps_gvcc``
columns of the ``gvcc`` protocol beside them.
"""
from __future__ import annotations

import math

GVCC_FPS = 16.0   # GVCC divides by 16 frames per second whatever the source's rate


def bits_per_atom(K: int) -> int:
    """Index bits plus one sign bit, as GVCC counts an atom: ``ceil(log2 K) + 1``
    (``ceil(log2 K)`` taken as 1 for K=1)."""
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    return (math.ceil(math.log2(K)) if K > 1 else 1) + 1


def index_bits(K: int, M: int, sde_steps: int, latent_frames: int) -> int:
    """GVCC's index bits of one GOP: ``sde_steps x latent_frames x M x bits_per_atom(K)``."""
    for name, v in (("M", M), ("sde_steps", sde_steps), ("latent_frames", latent_frames)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return int(sde_steps) * int(latent_frames) * int(M) * bits_per_atom(K)


def stream_bits(mode: str, coding: str, K: int, M: int, sde_steps: int,
                latent_frames_per_gop: list[int], breakdown: dict[str, int]) -> dict:
    """GVCC's count of one of our streams.

    ``breakdown`` is :func:`gvc_jax.bitstream.container.breakdown` of the file (bytes per kind).
    Returns ``{"bits_gvcc", "parts": {"indices", "anchors", "residuals"}, "note"}``; for a coding
    GVCC has no count for (not top-M) ``bits_gvcc`` is None and ``note`` says why.
    """
    if coding != "topm":
        return {"bits_gvcc": None, "parts": {},
                "note": f"GVCC counts top-M indices only; this stream uses the {coding} coding"}
    idx = sum(index_bits(K, M, sde_steps, n) for n in latent_frames_per_gop)
    anchors = 8 * int(breakdown.get("anchors", 0))
    residuals = 8 * int(breakdown.get("residuals", 0))
    if mode == "i2v":
        parts = {"indices": idx, "anchors": 0, "residuals": residuals}
        note = "I2V: first frame free, M_tail atoms counted as M, residual bytes counted"
    elif mode == "flf2v":
        parts = {"indices": idx, "anchors": anchors, "residuals": residuals}
        note = "FLF2V: boundary frames counted by their bytes"
    else:
        parts = {"indices": idx, "anchors": anchors, "residuals": residuals}
        note = None
    return {"bits_gvcc": sum(parts.values()), "parts": parts, "note": note}


def rates(bits: int | None, frames: int, height: int, width: int) -> dict:
    """``{"bits_gvcc", "bpp_gvcc", "kbps_gvcc"}``: bpp over the evaluated frames, kbps at
    :data:`GVCC_FPS` (None when ``bits`` is None)."""
    if bits is None:
        return {"bits_gvcc": None, "bpp_gvcc": None, "kbps_gvcc": None}
    return {"bits_gvcc": int(bits), "bpp_gvcc": bits / (frames * height * width),
            "kbps_gvcc": bits / (frames / GVCC_FPS) / 1000.0}
