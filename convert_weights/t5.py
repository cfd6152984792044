"""``gvc-convert t5``: the command line of :mod:`gvc_jax.weights.t5`.

The architecture is read from the checkpoint: the diffusers ``text_encoder/config.json``, or
the tensor shapes of the official ``models_t5_umt5-xxl-enc-bf16.pth`` (see
:mod:`gvc_jax.weights.folder`); ``--config`` is an optional preset checked against it.
``OUT`` is an orbax folder (``OUT/params`` + ``meta.json``, as the DiT converter writes) or, if
it ends in ``.safetensors``, one safetensors file (metadata as in ``meta.json``).
"""
from __future__ import annotations

from convert_weights import common
from gvc_jax.weights.sources import CheckpointError

# Architecture fields compared between a preset and the checkpoint.
_FIELDS = ("vocab", "dim", "dim_attn", "ffn", "heads", "layers", "buckets", "max_distance")


def locate(src: str, layout: str = "auto") -> tuple[str, str]:
    """``(path, layout)`` of the umT5 checkpoint in ``src`` (download folder, ``text_encoder/``
    folder or a checkpoint file)."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.t5 import resolve

    if layout == "auto":
        try:
            return wf.t5_source(src)
        except CheckpointError:
            if not common.bare_folder(src):
                raise
            # the checkpoint's files in a folder of their own: resolve() below finds them
    return resolve(src, layout)


def architecture(path: str, layout: str, preset, name: str | None):
    from gvc_jax.weights import folder as wf

    cfg = None
    if layout == "official":
        cfg = wf.t5_config(path, "official")
    else:
        folder = common.sibling_config(path)
        if folder is not None:
            cfg = wf.t5_config(folder, "diffusers")
    if cfg is None:
        if preset is None:
            raise CheckpointError(f"{path}: no config.json to read the text encoder's "
                                  "architecture from; name a preset with --config")
        return preset
    if preset is not None:
        common.check_preset(path, name, preset, cfg, _FIELDS)
        return preset  # same architecture; the preset names it
    return cfg


def _convert(argv) -> int:
    from configs.wan_text import get_config
    from gvc_jax.weights import t5 as lib

    ap = common.parser("gvc-convert t5", "Convert a umT5 text-encoder checkpoint.",
                       src_help="download folder, its text_encoder/ folder, or the checkpoint "
                                "file", out_help="output orbax folder, or a .safetensors file",
                       presets=("umt5-xxl", "tiny"), layouts=("official", "diffusers"))
    a = ap.parse_args(argv)
    preset = common.preset(get_config, a.config)
    common.check_output(a.out)
    common.require(a.src)
    path, layout = locate(a.src, a.layout)
    cfg = architecture(path, layout, preset, a.config)
    conv = lib.conversion(lib.read(path, layout), cfg, dtype=a.dtype)
    with common.naming(path):
        arrays, fp = conv.run(common.progress_enabled(a))
    meta = common.meta("umt5", cfg, layout, conv, fp)
    return common.finish(arrays, a.out, meta)


def cli_convert(argv=None) -> int:
    """``gvc-convert t5 SRC OUT [--config umt5-xxl|tiny] [--layout auto|official|diffusers]
    [--dtype float32|bfloat16]``."""
    return common.run(_convert, argv)
