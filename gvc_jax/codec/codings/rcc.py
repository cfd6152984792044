"""``rcc``: reverse channel coding, greedy shift matching over shared-seed candidates
(docs/rcc.md; the sampler side is :mod:`gvc_jax.sampler.rcc`).

Both sides plan the same steps from the model's expected denoising-error curve
(``model.error_fn``) and the header's rcc fields, so the payload size is exact before coding
and carries no side information: ceil(F / group) x parts rows x S steps x ``rcc_choice_bits``.
After the last communicating step an accurate ODE tail finishes the GOP.
"""
from __future__ import annotations

import dataclasses

from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.fields import param
from gvc_jax.sampler.solvers import FAMILIES, SOLVERS

MAX_CHOICE_BITS = {"iid": 20, "shift": 40}


@dataclasses.dataclass(frozen=True)
class Params:
    rcc_bits: int = param(0, "rcc: bits per latent frame of a GOP (the rate knob; whole "
                             "choices of rcc_choice_bits)", lo=0, hi=10 ** 6, omit_default=True)
    rcc_choice_bits: int = param(12, "rcc: bits per choice (2^b shared-seed candidates)",
                                 lo=1, hi=max(MAX_CHOICE_BITS.values()), omit_default=True)
    rcc_candidates: str = param("iid", "rcc: candidate family, iid normals or signed shifts of "
                                       "shared bases (cheaper: one FFT per base; docs/rcc.md "
                                       "§2)", choices=FAMILIES, omit_default=True)
    rcc_group: int = param(1, "rcc: latent frames that share one choice (larger choices at "
                              "the same bits per frame; docs/rcc.md §3)", lo=1, hi=64,
                           omit_default=True)
    rcc_parts: int = param(1, "rcc: interleaved parts of each row (a group of frames), a "
                              "choice each (P times the bits per step: P times fewer model "
                              "steps at a rate; docs/rcc.md §3)", lo=1, hi=4096,
                           omit_default=True)
    rcc_tail_steps: int = param(16, "rcc: intervals of the probability-flow ODE tail after "
                                    "the last communicating step (docs/rcc.md §1)", lo=1,
                                hi=256, omit_default=True)
    rcc_tail_solver: str = param("rk4", "rcc: the ODE tail's solver; model calls per "
                                        "interval: rk4 4, dpm2m 1 (second-order multistep), "
                                        "heun 2, euler 1", choices=SOLVERS,
                                 omit_default=True)


def spec_for(model, params, shape):
    """rcc's spec for a GOP of latent ``shape``: both sides plan it from the model's
    denoising-error curve (UsageError when the model has none or the layout is impossible)."""
    from gvc_jax.sampler import rcc

    _check_curve(model)
    try:
        spec = rcc.plan(model.error_fn(shape), params.rcc_bits, bits=params.rcc_choice_bits,
                        levels=1, group=params.rcc_group, parts=params.rcc_parts,
                        family=params.rcc_candidates, tail_steps=params.rcc_tail_steps,
                        tail_solver=params.rcc_tail_solver,
                        chunk=(min(4096, 1 << params.rcc_choice_bits)
                               if params.rcc_candidates == "iid" else 64))
    except ValueError as e:
        raise UsageError(f"rcc: {e}") from None
    frame_len = shape[0] * shape[2] * shape[3]
    if spec.parts > spec.group * frame_len:
        raise UsageError(f"rcc: {spec.parts} parts of rows of {spec.group * frame_len} values")
    if spec.family == "shift":
        from gvc_jax.codebook import shifted

        try:
            shifted.layout(spec.bits, spec.row_len(frame_len))
        except ValueError as e:
            raise UsageError(f"rcc: {e}") from None
    return spec


def _check_curve(model) -> None:
    if model.error_fn is None:
        raise UsageError(f"--coding rcc needs a model with a known denoising-error curve; "
                         f"{model.name!r} has none (the gaussian prior and Wan have)")


class Rcc:
    name = "rcc"
    summary = "reverse channel coding, docs/rcc.md; models with a known denoising-error curve"
    Params = Params
    label_keys = ("rcc_bits", "rcc_choice_bits")
    entry_keys: tuple[str, ...] = ()
    batch = False
    rate_hint = "set the rate with --rcc-bits"

    def check_params(self, p) -> None:
        top = MAX_CHOICE_BITS[p.rcc_candidates]
        if not 1 <= p.rcc_choice_bits <= top:
            raise UsageError(f"rcc_choice_bits must lie in [1, {top}] with "
                             f"{p.rcc_candidates} candidates, got {p.rcc_choice_bits}")
        if not p.rcc_choice_bits * p.rcc_parts <= p.rcc_bits * p.rcc_group:
            raise UsageError(f"--coding rcc needs rcc_bits in [rcc_choice_bits * rcc_parts / "
                             f"rcc_group, 10^6] (bits per latent frame), got {p.rcc_bits}")

    def check_model(self, params, model) -> None:
        _check_curve(model)

    def header_entries(self, params, n_latent):
        return {}

    def read_entries(self, codec, values, n_latent):
        return {}

    def payload_bits(self, params, model, n_latent):
        from gvc_jax.sampler.rcc import rows_for, steps_for

        rows = rows_for(n_latent, params.rcc_group, params.rcc_parts)
        return rows * params.rcc_choice_bits * steps_for(
            params.rcc_bits, params.rcc_choice_bits, 1, params.rcc_group, params.rcc_parts)

    def encode_gop(self, session, gop, x0, x_T, cond) -> bytes:
        from gvc_jax.bitstream import rcc_payload
        from gvc_jax.sampler import rcc

        model, p = session.model, session.params
        spec = spec_for(model, p, tuple(x0.shape))
        choices, _ = rcc.rcc_encode_gop(model.graphdef, model.dit_state(), cond, x_T, x0,
                                        p.seed, gop.index, spec=spec)
        return rcc_payload.pack(rcc.choices_to_ints(choices, spec), spec.bits)

    def decode_gop(self, session, gop, payload, x_T, cond):
        from gvc_jax.bitstream import rcc_payload
        from gvc_jax.bitstream.errors import BitstreamError
        from gvc_jax.sampler import rcc

        model, p = session.model, session.params
        shape = tuple(x_T.shape)
        try:
            spec = spec_for(model, p, shape)
        except UsageError as e:          # a header the model cannot plan
            raise BitstreamError(f"unsupported rcc parameters in header: {e}") from None
        choices = rcc_payload.unpack(payload, (spec.n_steps, spec.n_rows(shape[1]),
                                               spec.levels), spec.bits)
        return rcc.rcc_decode_gop(model.graphdef, model.dit_state(), cond, x_T,
                                  rcc.choices_from_ints(choices, spec), p.seed, gop.index,
                                  spec=spec)

    def cost(self, params, model, shape):
        spec = spec_for(model, params, shape)
        c, f, h, w = shape
        rows = spec.n_rows(f)
        return {"atom_samples": spec.n_steps * rows * spec.n_cand * spec.row_len(c * h * w),
                "model_evaluations": 2 * spec.model_calls()}

    def progress_steps(self, params):
        return None

    def rate_knob(self, params):
        return None


RCC = Rcc()
