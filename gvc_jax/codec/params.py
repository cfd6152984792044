"""The codec parameters, declared once (docs/codec.md, "Parameters").

:class:`CodecParams` is assembled from the parameter groups of :mod:`gvc_jax.codec.registry`:
the common group below, each coding's and each mode's (:mod:`gvc_jax.codec.fields` says how one
parameter is declared). Everything else derives from those declarations: validation (one set of
limits), the ``gvc compress`` flags (:func:`add_cli_flags`), the presets in
``configs/codec.py`` (which only name the fields they change) and the header's ``codec`` object
(:meth:`CodecParams.header_fields` / :meth:`CodecParams.from_header`), which holds the common
fields, the fields of the coding in use and those of the mode. Adding a coding adds its group
through the registry; nothing here changes.
"""
from __future__ import annotations

import dataclasses

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import fields as F, registry
from gvc_jax.codec.errors import UsageError
from gvc_jax.codec.fields import param

DTYPES = ("float32", "bfloat16", "fp8")   # fp8: the Wan DiT on Hopper GPUs, docs/fp8.md
MAX_LATENT_FRAMES = 100_000


@dataclasses.dataclass(frozen=True)
class Common:
    """Parameters of every stream."""
    seed: int = param(0, "seed of the codebook and of x_T", lo=0, hi=2 ** 32 - 1)
    gop_frames: int = param(16, "source frames per GOP", lo=1, hi=MAX_LATENT_FRAMES)
    guidance: float = param(1.0, "classifier-free guidance scale (1 = off; needs a "
                                 "text-conditioned model)", lo=0.0, lo_open=True, hi=100.0)
    coding: str = param("topm", "coding scheme: " + "; ".join(
        f"{n} ({c.summary})" for n, c in registry.CODINGS.items()),
        choices=tuple(registry.CODINGS), omit_default=True)
    dtype: str = param("float32", "compute dtype of the velocity model (the decoder uses the "
                                  "same)", choices=DTYPES, flag=False)
    text_len: int = param(512, "tokens of the prompt context a text-conditioned model sees: "
                               "the prompt's, then zeros (Wan's own 512; GVCC's T2V wrapper "
                               "pads to 226)", lo=1, hi=4096, omit_default=True)


# Header fields older streams may lack; they take their defaults (what those builds ran).
OPTIONAL_IN_HEADER = ("guidance", "dtype", "schedule")


def _groups() -> list[tuple[str, type]]:
    """``(owner, group)`` in flag order: codings first, then the common and the mode groups."""
    first, *rest = registry.CODINGS.values()
    return ([(first.name, first.Params), ("common", Common)]
            + [(g_owner, g) for g_owner, g in registry.mode_groups()]
            + [(c.name, c.Params) for c in rest])


_OWNER: dict[str, str] = {}
_FIELDS: list[dataclasses.Field] = []
for _owner, _group in _groups():
    for _f in dataclasses.fields(_group):
        if _f.name in _OWNER:
            raise TypeError(f"codec parameter {_f.name!r} is declared twice")
        _OWNER[_f.name] = _owner
        _FIELDS.append(_f)


class _Methods:
    """What every :class:`CodecParams` can do (its fields come from the groups)."""

    def validate(self) -> None:
        """Each field's range and choices, then the cross-field rules of the common group and
        of the coding in use. Raises UsageError."""
        for f in dataclasses.fields(self):
            F.check(f, getattr(self, f.name))
        registry.coding(self.coding).check_params(self)

    def replace(self, **kw) -> "CodecParams":
        return CodecParams.from_values({**dataclasses.asdict(self), **kw})

    def owners_in_use(self, mode: str) -> set[str]:
        return {"common", self.coding, *registry.mode(mode).owners}

    def header_fields(self, mode: str, n_latent: int) -> dict:
        """The header's ``codec`` object: mode, latent frames per GOP, and every ``header``
        field of the common group, the coding in use and the mode (``omit_default`` fields
        only away from their defaults), with the coding's own entries (top-M's M list)."""
        use = self.owners_in_use(mode)
        out = {"mode": mode, "latent_frames": n_latent}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if _OWNER[f.name] in use and f.metadata["header"] and not (
                    f.metadata["omit_default"] and v == f.default):
                out[f.name] = v
        out.update(registry.coding(self.coding).header_entries(self, n_latent))
        return out

    @classmethod
    def from_header(cls, codec) -> tuple["CodecParams", str]:
        """``(params, mode)`` of a stream's ``codec`` object; BitstreamError (naming the field)
        if it is malformed or the decoder cannot run it exactly. Keys of groups not in use are
        ignored."""
        try:
            if not isinstance(codec, dict):
                raise UsageError(f"must be an object, got {type(codec).__name__}")
            mode = codec.get("mode")
            if mode not in registry.MODES:
                raise UsageError(f"mode must be one of {', '.join(registry.MODES)}, "
                                 f"got {mode!r}")
            coding = codec.get("coding", "topm")
            if coding not in registry.CODINGS:
                raise UsageError(f"coding must be one of {', '.join(registry.CODINGS)}, "
                                 f"got {coding!r}")
            n_lat = codec.get("latent_frames")
            if isinstance(n_lat, bool) or not isinstance(n_lat, int) \
                    or not 1 <= n_lat <= MAX_LATENT_FRAMES:
                raise UsageError(f"latent_frames = {n_lat!r} is outside [1, "
                                 f"{MAX_LATENT_FRAMES}]" if "latent_frames" in codec
                                 else "misses key latent_frames")
            use = {"common", coding, *registry.mode(mode).owners}
            entries = registry.coding(coding).entry_keys
            values, missing = {}, []
            for f in _FIELDS:
                if _OWNER[f.name] not in use or not f.metadata["header"] or f.name in entries:
                    continue
                if f.name in codec:
                    values[f.name] = F.cast(f, codec[f.name])
                    F.check(f, values[f.name])
                elif not f.metadata["omit_default"] and f.name not in OPTIONAL_IN_HEADER:
                    missing.append(f.name)
            if missing:
                raise UsageError(f"misses key(s) {', '.join(missing)}")
            values.update(registry.coding(coding).read_entries(codec, values, n_lat))
            params = cls(**values)
            params.validate()
            return params, mode
        except UsageError as e:
            sep = " " if str(e).startswith(("must", "misses")) else "."
            raise BitstreamError(f"bad header: codec{sep}{e}") from None

    @classmethod
    def from_values(cls, values: dict) -> "CodecParams":
        unknown = sorted(set(values) - set(_OWNER))
        if unknown:
            raise UsageError(f"unknown codec parameter(s): {', '.join(unknown)}")
        by_name = {f.name: f for f in _FIELDS}
        p = cls(**{k: F.cast(by_name[k], v) for k, v in values.items()})
        p.validate()
        return p


CodecParams = dataclasses.make_dataclass(
    "CodecParams",
    [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
     for f in _FIELDS],
    bases=(_Methods,), frozen=True)
CodecParams.__module__ = __name__
CodecParams.__doc__ = ("Codec settings: the fields of every parameter group "
                       "(:mod:`gvc_jax.codec.params`).")


def owner(name: str) -> str:
    """The group a parameter belongs to: ``common``, a coding's name or a mode group's."""
    return _OWNER[name]


def defaults() -> dict:
    return {f.name: f.default for f in _FIELDS}


def check_in_use(overrides: dict, mode: str, coding: str) -> None:
    """A parameter the user set that the stream would not use is a usage error (e.g. ``--K``
    with ``--coding rcc``, ``--residual-step`` with a T2V preset)."""
    use = {"common", coding, *registry.mode(mode).owners}
    for name in overrides:
        if _OWNER.get(name, "common") not in use:
            who = _OWNER[name]
            what = f"--coding {who}" if who in registry.CODINGS else \
                f"the {'/'.join(m for m, c in registry.MODES.items() if who in c.owners)} " \
                "mode"
            raise UsageError(f"--{name.replace('_', '-')} applies to {what}, not to this "
                             f"{mode} {coding} stream")


# ---------------------------------------------------------------------- CLI glue
def flag_fields() -> list[dataclasses.Field]:
    return [f for f in _FIELDS if f.metadata["flag"]]


def add_cli_flags(parser) -> None:
    """``--K``, ``--M``, ``--sde-steps`` ...: one optional flag per field, overriding the
    preset."""
    for f in flag_fields():
        kw = {"choices": f.metadata["choices"]} if f.metadata["choices"] else {}
        text = f.metadata["help"]
        parser.add_argument("--" + f.name.replace("_", "-"), type=F.type_of(f), dest=f.name,
                            default=None, help=text if "default" in text
                            else text + " (default: the preset's)", **kw)


def overrides_from_args(args) -> dict:
    """The parameter flags a user actually gave."""
    return {f.name: getattr(args, f.name) for f in flag_fields()
            if getattr(args, f.name, None) is not None}
