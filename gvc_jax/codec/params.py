"""The codec parameters, declared once (docs/codec.md, "Parameters").

:class:`CodecParams` is the single declaration. Everything else is derived from its fields and
their metadata: validation, the ``gvc compress`` flags (:func:`add_cli_flags`), the presets in
``configs/codec.py`` (which only name the fields they change), the header's ``codec`` object
(:meth:`CodecParams.header_fields` / :meth:`CodecParams.from_header`) and the sampler spec
(:meth:`CodecParams.spec`). The number of atoms per latent frame comes from one method,
:meth:`CodecParams.m_per_frame`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codebook.table import MAX_EXACT_ATOMS
from gvc_jax.codec.errors import UsageError
from gvc_jax.sampler import SamplerSpec
from gvc_jax.sampler.rcc import SOLVERS as RCC_SOLVERS

SCHEDULES = ("shifted", "logsnr")
CODINGS = ("topm", "rcc")
DTYPES = ("float32", "bfloat16")


TAIL_FRAMES = 2   # latent frames that take M_tail atoms (GVCC's I2V: the last 2)


def _p(default, help: str, *, header: bool = True, choices=None, flag: bool = True,
       omit_default: bool = False):
    """A parameter. ``omit_default``: a header field left out of the header at its default
    (mode-specific fields cost no bytes in streams of other modes)."""
    return dataclasses.field(default=default, metadata={"help": help, "header": header,
                                                        "choices": choices, "flag": flag,
                                                        "omit_default": omit_default})


@dataclasses.dataclass(frozen=True)
class CodecParams:
    """Codec settings. Fields with ``header`` metadata travel in the bitstream header."""
    K: int = _p(16384, "codebook size: atoms scored per SDE step and latent frame")
    M: int = _p(64, "atoms sent per SDE step and latent frame")
    steps: int = _p(20, "sampler steps")
    sde_steps: int = _p(17, "leading steps that are SDE steps and carry bits")
    g_scale: float = _p(3.0, "diffusion scale: g_t = g_scale * t^2")
    shift: float = _p(1.0, "time-grid shift s: t' = s t / (1 + (s - 1) t)")
    seed: int = _p(0, "seed of the codebook and of x_T")
    gop_frames: int = _p(16, "source frames per GOP")
    schedule: str = _p("shifted", "time grid", choices=SCHEDULES)
    guidance: float = _p(1.0, "classifier-free guidance scale (1 = off; needs a text-conditioned "
                              "model)")
    M_tail: int = _p(0, f"atoms per SDE step on each of the last {TAIL_FRAMES} latent frames "
                        "(0 = M; GVCC's I2V uses 2M)", omit_default=True)
    residual_step: float = _p(0.0, "quantiser step of the entropy-coded residual of each GOP's "
                                   "last latent frame (0 = no residual; I2V)",
                              omit_default=True)
    coding: str = _p("topm", "coding scheme: topm (GVCC's top-M atoms) or rcc (reverse "
                             "channel coding, docs/rcc.md; models with a known denoising-error "
                             "curve: gaussian)", choices=CODINGS, omit_default=True)
    rcc_bits: int = _p(0, "rcc: bits per latent frame of a GOP (the rate knob; whole choices "
                          "of rcc_choice_bits)", omit_default=True)
    rcc_choice_bits: int = _p(12, "rcc: bits per choice (2^b shared-seed candidates)",
                              omit_default=True)
    rcc_candidates: str = _p("iid", "rcc: candidate family, iid normals or signed shifts of "
                                    "shared bases (cheaper: one FFT per base; docs/rcc.md §2)",
                             choices=("iid", "shift"), omit_default=True)
    rcc_group: int = _p(1, "rcc: latent frames that share one choice (larger choices at the "
                           "same bits per frame; docs/rcc.md §3)", omit_default=True)
    rcc_parts: int = _p(1, "rcc: interleaved parts of each row (a group of frames), a choice each "
                           "(P times the bits per step: P times fewer model steps at a rate; "
                           "docs/rcc.md §3)", omit_default=True)
    rcc_tail_steps: int = _p(16, "rcc: intervals of the probability-flow ODE tail after the last "
                                 "communicating step (docs/rcc.md §1)", omit_default=True)
    rcc_tail_solver: str = _p("rk4", "rcc: the ODE tail's solver; model calls per interval: rk4 "
                                     "4, dpm2m 1 (second-order multistep), heun 2, euler 1",
                              choices=RCC_SOLVERS, omit_default=True)
    anchor_codec: str = _p("", "image codec of the anchor frames, NAME[:SETTING] (I2V/FLF2V; "
                               "default: the preset's)", header=False)
    dtype: str = _p("float32", "compute dtype of the velocity model (the decoder uses the same)",
                    choices=DTYPES, flag=False)
    chunk: Any = _p(None, "atoms scored at once by the encoder (memory knob)", header=False,
                    flag=False)

    # ------------------------------------------------------------------ derived
    def m_per_frame(self, n_latent: int) -> tuple[int, ...]:
        """Atoms per latent frame of a GOP with ``n_latent`` latent frames: ``M``, and
        ``M_tail`` on the last :data:`TAIL_FRAMES` when it is set."""
        tail = min(TAIL_FRAMES, n_latent) if self.M_tail else 0
        return (self.M,) * (n_latent - tail) + (self.M_tail,) * tail

    def rcc_spec(self, err_fn):
        """The rcc spec of a GOP (docs/rcc.md §3): steps placed on ``err_fn``, the model's
        expected per-frame denoising error, so the decoder derives the same one."""
        from gvc_jax.sampler import rcc

        try:
            return rcc.plan(err_fn, self.rcc_bits, bits=self.rcc_choice_bits, levels=1,
                            group=self.rcc_group, parts=self.rcc_parts,
                            family=self.rcc_candidates, tail_steps=self.rcc_tail_steps,
                            tail_solver=self.rcc_tail_solver,
                            chunk=(min(4096, 1 << self.rcc_choice_bits)
                                   if self.rcc_candidates == "iid" else 64))
        except ValueError as e:
            raise UsageError(f"rcc: {e}") from None

    def rcc_payload_bits(self, n_latent: int) -> int:
        """rcc's payload bits of a GOP of ``n_latent`` latent frames: ceil(F / group) x parts
        rows x S steps x ``rcc_choice_bits``, S = rcc_bits * group // (rcc_choice_bits * parts)
        (docs/rcc.md §3)."""
        from gvc_jax.sampler.rcc import rows_for, steps_for

        rows = rows_for(n_latent, self.rcc_group, self.rcc_parts)
        return rows * self.rcc_choice_bits * steps_for(
            self.rcc_bits, self.rcc_choice_bits, 1, self.rcc_group, self.rcc_parts)

    def spec(self, m_per_frame: tuple[int, ...]) -> SamplerSpec:
        return SamplerSpec(n_steps=self.steps, sde_steps=self.sde_steps, g_scale=self.g_scale,
                           shift=self.shift, K=self.K, m_per_frame=tuple(m_per_frame),
                           chunk=self.chunk, schedule=self.schedule)

    def header_fields(self, n_latent: int) -> dict:
        """The header's codec entries: every ``header`` field, M as a per-latent-frame list."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.metadata["header"] and not (f.metadata["omit_default"]
                                                and getattr(self, f.name) == f.default)}
        out["M"] = list(self.m_per_frame(n_latent))
        out["latent_frames"] = n_latent
        return out

    @classmethod
    def from_header(cls, codec: dict) -> "CodecParams":
        """Parameters of a stream; BitstreamError if the decoder cannot run them exactly.

        Fields written by older builds before they existed take their defaults (``guidance``
        1, ``dtype`` float32: what those builds ran)."""
        try:
            values = {}
            for f in dataclasses.fields(cls):
                if not f.metadata["header"] or f.name == "M":
                    continue
                if f.name in codec:
                    values[f.name] = _cast(f, codec[f.name])
            m = [int(v) for v in codec["M"]]
            if not m or min(m) < 1:
                raise UsageError("every M must be >= 1")
            params = cls(M=m[0], **values)
            params.validate()
            if list(params.m_per_frame(len(m))) != m:
                raise UsageError(f"the M list {m} is not what M={m[0]}, "
                                 f"M_tail={params.M_tail} give")
            return params
        except (UsageError, KeyError, TypeError, ValueError) as e:
            raise BitstreamError(f"unsupported codec parameters in header: {e}") from None

    @classmethod
    def from_values(cls, values: dict) -> "CodecParams":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UsageError(f"unknown codec parameter(s): {', '.join(unknown)}")
        p = cls(**{k: _cast(_field(k), v) if v is not None else None for k, v in values.items()})
        p.validate()
        return p

    def replace(self, **kw) -> "CodecParams":
        return CodecParams.from_values({**dataclasses.asdict(self), **kw})

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        if not 2 <= self.K <= 2 ** 16:
            raise UsageError(f"K must lie in [2, 65536], got {self.K}")
        if not 1 <= self.M <= min(self.K, MAX_EXACT_ATOMS):
            raise UsageError(f"M must lie in [1, min(K, {MAX_EXACT_ATOMS})], got {self.M} "
                             f"(K={self.K}; sums of more atoms are not exact in float32)")
        if self.M_tail and not 1 <= self.M_tail <= min(self.K, MAX_EXACT_ATOMS):
            raise UsageError(f"M_tail must be 0 or lie in [1, min(K, {MAX_EXACT_ATOMS})], got "
                             f"{self.M_tail}")
        if not 0 <= self.residual_step <= 1e3:
            raise UsageError(f"residual_step must lie in [0, 1000], got {self.residual_step}")
        top = 20 if self.rcc_candidates == "iid" else 40
        if self.coding == "rcc" and not 1 <= self.rcc_choice_bits <= top:
            raise UsageError(f"rcc_choice_bits must lie in [1, {top}] with "
                             f"{self.rcc_candidates} candidates, got {self.rcc_choice_bits}")
        if self.coding == "rcc" and not 1 <= self.rcc_group <= 64:
            raise UsageError(f"rcc_group must lie in [1, 64], got {self.rcc_group}")
        if self.coding == "rcc" and not 1 <= self.rcc_parts <= 4096:
            raise UsageError(f"rcc_parts must lie in [1, 4096], got {self.rcc_parts}")
        if self.coding == "rcc" and not 1 <= self.rcc_tail_steps <= 256:
            raise UsageError(f"rcc_tail_steps must lie in [1, 256], got {self.rcc_tail_steps}")
        if self.coding == "rcc" and not (self.rcc_choice_bits * self.rcc_parts
                                         <= self.rcc_bits * self.rcc_group
                                         and self.rcc_bits <= 10 ** 6):
            raise UsageError(f"--coding rcc needs rcc_bits in [rcc_choice_bits * rcc_parts / "
                             f"rcc_group, 10^6] (bits per latent frame), got {self.rcc_bits}")
        if not 1 <= self.steps <= 1000 or not 0 <= self.sde_steps <= self.steps:
            raise UsageError(f"need 1 <= steps <= 1000 and 0 <= sde_steps <= steps, "
                             f"got steps={self.steps}, sde_steps={self.sde_steps}")
        if not self.g_scale >= 0 or not self.shift > 0:
            raise UsageError("g_scale must be >= 0 and shift > 0")
        if not 0 <= self.seed < 2 ** 32:
            raise UsageError("seed must lie in [0, 2^32)")
        if self.gop_frames < 1:
            raise UsageError(f"gop_frames must be >= 1, got {self.gop_frames}")
        for f in dataclasses.fields(self):
            ch = f.metadata["choices"]
            if ch and getattr(self, f.name) not in ch:
                raise UsageError(f"{f.name} must be one of {', '.join(ch)}, "
                                 f"got {getattr(self, f.name)!r}")
        if self.schedule == "logsnr" and self.steps < 2:
            raise UsageError("the logsnr schedule needs at least 2 steps")
        if not 0 < self.guidance <= 100:
            raise UsageError(f"guidance must lie in (0, 100], got {self.guidance}")
        if self.chunk is not None and self.chunk < 1:
            raise UsageError(f"chunk must be >= 1, got {self.chunk}")


def _field(name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(CodecParams)}[name]


def _cast(f: dataclasses.Field, v):
    """Strict type of a field value: ints stay ints (no bools, no floats), floats accept ints."""
    t = {"int": int, "float": float, "str": str}.get(str(f.type))
    if t is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise UsageError(f"{f.name} must be an integer, got {v!r}")
        return v
    if t is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UsageError(f"{f.name} must be a number, got {v!r}")
        return float(v)
    if t is str:
        if not isinstance(v, str):
            raise UsageError(f"{f.name} must be a string, got {v!r}")
        return v
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise UsageError(f"{f.name} must be an integer, got {v!r}")
    return v


def defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(CodecParams)}


# ---------------------------------------------------------------------- CLI glue
def flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(CodecParams) if f.metadata["flag"]]


def add_cli_flags(parser) -> None:
    """``--K``, ``--M``, ``--sde-steps`` ...: one optional flag per field, overriding the preset."""
    for f in flag_fields():
        typ = {"int": int, "float": float, "str": str}[str(f.type)]
        kw = {"choices": f.metadata["choices"]} if f.metadata["choices"] else {}
        parser.add_argument("--" + f.name.replace("_", "-"), type=typ, dest=f.name, default=None,
                            help=f.metadata["help"] + " (default: the preset's)", **kw)


def overrides_from_args(args) -> dict:
    """The parameter flags a user actually gave."""
    return {f.name: getattr(args, f.name) for f in flag_fields()
            if getattr(args, f.name, None) is not None}
