"""``topm``: GVCC's coding, the top-M signed atoms of K per SDE step and latent frame
(docs/codec.md, "Codings"; docs/design.md §3).

Per GOP the encoder scan (:func:`gvc_jax.sampler.encode_gop`) picks, per SDE step and latent
frame, the M atoms with the largest |<atom, x0_target - x0_hat>|; the index sets and signs are
enumeratively coded (:mod:`gvc_jax.bitstream.indices`), ceil(log2 C(K, M)) + M bits each. The
decoder replays the trajectory from them (:func:`gvc_jax.sampler.decode_gop`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.fields import param

SCHEDULES = ("shifted", "logsnr")
TAIL_FRAMES = 2   # latent frames that take M_tail atoms (GVCC's I2V: the last 2)


@dataclasses.dataclass(frozen=True)
class Params:
    K: int = param(16384, "codebook size: atoms scored per SDE step and latent frame", lo=2,
                   hi=2 ** 16)
    M: int = param(64, "atoms sent per SDE step and latent frame", lo=1)
    steps: int = param(20, "sampler steps", lo=1, hi=1000)
    sde_steps: int = param(17, "leading steps that are SDE steps and carry bits", lo=0,
                           hi=1000)
    g_scale: float = param(3.0, "diffusion scale: g_t = g_scale * t^2", lo=0.0, hi=1e6)
    shift: float = param(1.0, "time-grid shift s: t' = s t / (1 + (s - 1) t)", lo=0.0,
                         lo_open=True, hi=1e6)
    schedule: str = param("shifted", "time grid", choices=SCHEDULES)
    M_tail: int = param(0, f"atoms per SDE step on each of the last {TAIL_FRAMES} latent "
                           "frames (0 = M; GVCC's I2V uses 2M)", lo=0, omit_default=True)
    chunk: Any = param(None, "atoms scored at once by the encoder (memory knob)", lo=1,
                       header=False, flag=False)


def m_per_frame(params, n_latent: int) -> tuple[int, ...]:
    """Atoms per latent frame of a GOP with ``n_latent`` latent frames: ``M``, and ``M_tail``
    on the last :data:`TAIL_FRAMES` when it is set."""
    tail = min(TAIL_FRAMES, n_latent) if params.M_tail else 0
    return (params.M,) * (n_latent - tail) + (params.M_tail,) * tail


def spec(params, m: tuple[int, ...]):
    """The sampler spec of a GOP whose latent frames take ``m`` atoms."""
    from gvc_jax.sampler import SamplerSpec

    return SamplerSpec(n_steps=params.steps, sde_steps=params.sde_steps,
                       g_scale=params.g_scale, shift=params.shift, K=params.K,
                       m_per_frame=tuple(m), chunk=params.chunk, schedule=params.schedule)


class TopM:
    name = "topm"
    summary = "GVCC's top-M atoms"
    Params = Params
    label_keys = ("K", "M")
    entry_keys = ("M",)       # header entries written by header_entries, not field by field
    batch = True
    rate_hint = ""

    def check_params(self, p) -> None:
        from gvc_jax.codebook.table import MAX_EXACT_ATOMS

        top = min(p.K, MAX_EXACT_ATOMS)
        if not 1 <= p.M <= top:
            raise UsageError(f"M must lie in [1, min(K, {MAX_EXACT_ATOMS})], got {p.M} "
                             f"(K={p.K}; sums of more atoms are not exact in float32)")
        if p.M_tail and not 1 <= p.M_tail <= top:
            raise UsageError(f"M_tail must be 0 or lie in [1, min(K, {MAX_EXACT_ATOMS})], got "
                             f"{p.M_tail}")
        if p.sde_steps > p.steps:
            raise UsageError(f"need sde_steps <= steps, got steps={p.steps}, "
                             f"sde_steps={p.sde_steps}")
        if p.schedule == "logsnr" and p.steps < 2:
            raise UsageError("the logsnr schedule needs at least 2 steps")

    def check_model(self, params, model) -> None:
        pass

    def header_entries(self, params, n_latent):
        return {"M": list(m_per_frame(params, n_latent))}

    def read_entries(self, codec, values, n_latent):
        if "M" not in codec:
            raise UsageError("misses key(s) M")
        m = codec["M"]
        if not isinstance(m, list):
            raise UsageError(f"M must be a list of per-latent-frame counts, got "
                             f"{type(m).__name__}")
        if len(m) != n_latent:
            raise UsageError(f"M has {len(m)} entries, latent_frames is {n_latent}")
        k = values.get("K", Params.K)
        for i, mv in enumerate(m):
            if isinstance(mv, bool) or not isinstance(mv, int) or not 1 <= mv <= k:
                raise UsageError(f"M[{i}] = {mv!r} is outside [1, {k}]")
        p = Params(**{n: v for n, v in values.items() if n in Params.__dataclass_fields__},
                   M=m[0])
        if list(m_per_frame(p, n_latent)) != m:
            raise UsageError(f"M list {m} is not what M={m[0]}, M_tail={p.M_tail} give")
        return {"M": m[0]}

    def payload_bits(self, params, model, n_latent):
        from gvc_jax.bitstream.indices import index_bits

        return index_bits(params.sde_steps, m_per_frame(params, n_latent), params.K)

    def encode_gop(self, session, gop, x0, x_T, cond) -> bytes:
        import numpy as np

        from gvc_jax.bitstream import indices
        from gvc_jax.sampler import encode_gop

        model, p = session.model, session.params
        m = m_per_frame(p, x0.shape[1])
        idx, sign, _ = encode_gop(model.graphdef, model.dit_state(), cond, x_T, x0, p.seed,
                                  gop.index, spec=spec(p, m))
        return indices.pack_indices(np.asarray(idx), np.asarray(sign), m, p.K)

    def decode_gop(self, session, gop, payload, x_T, cond):
        from gvc_jax.bitstream import indices
        from gvc_jax.sampler import decode_gop

        model, p = session.model, session.params
        m = m_per_frame(p, x_T.shape[1])
        idx, sign = indices.unpack_indices(payload, p.sde_steps, m, p.K)
        return decode_gop(model.graphdef, model.dit_state(), cond, x_T, idx, sign, p.seed,
                          gop.index, spec=spec(p, m))

    def encode_batch(self, model, state, cond, x_T_b, x0_b, params, gops_b, devices=None):
        """``gvc batch``: the packed payloads of B GOPs of one latent shape, coded as one
        jitted batch (:func:`gvc_jax.sampler.batched.encode_gops`); each equals
        :meth:`encode_gop`'s."""
        import numpy as np

        from gvc_jax.bitstream import indices
        from gvc_jax.sampler.batched import encode_gops

        m = m_per_frame(params, x0_b.shape[2])
        idx, sign, _ = encode_gops(model.graphdef, state, cond, x_T_b, x0_b, params.seed,
                                   np.asarray(gops_b, np.uint32), spec=spec(params, m),
                                   devices=devices)
        idx, sign = np.asarray(idx), np.asarray(sign)
        return [indices.pack_indices(idx[b], sign[b], m, params.K) for b in range(len(gops_b))]

    def check_payload(self, params, payload: bytes, n_latent: int) -> None:
        """A stored payload parses for these parameters (BitstreamError otherwise)."""
        from gvc_jax.bitstream import indices

        indices.unpack_indices(payload, params.sde_steps, m_per_frame(params, n_latent),
                               params.K)

    def cost(self, params, model, shape):
        c, f, h, w = shape
        return {"atom_samples": params.sde_steps * f * params.K * c * h * w,
                "model_evaluations": 2 * params.steps}

    def progress_steps(self, params):
        return params.steps

    def rate_knob(self, params):
        """M, with ``M_tail`` keeping its ratio to M; up to min(K, 947), the most atoms whose
        sum is exact (it may exceed the preset's)."""
        from gvc_jax.codebook.table import MAX_EXACT_ATOMS

        ratio = params.M_tail / params.M if params.M_tail else 0.0

        def with_m(m):
            return params.replace(M=m, M_tail=max(m, round(ratio * m)) if ratio else 0)
        return 1, int(min(params.K, MAX_EXACT_ATOMS) / max(1.0, ratio)), with_m


TOPM = TopM()
