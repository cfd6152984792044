"""``gvc-convert dit``: the command line of :mod:`gvc_jax.weights.dit`.

The architecture is the one the checkpoint's ``config.json`` declares (read by
:func:`gvc_jax.weights.folder.dit_config`, either layout); ``--config`` is an optional preset
checked against it, and names the architecture only where there is no ``config.json`` (a bare
``.safetensors`` file).
"""
from __future__ import annotations

import os

from convert_weights import common
from gvc_jax.weights.dit import LAYOUTS, conversion, detect_layout, read, resolve
from gvc_jax.weights.sources import CheckpointError

# Fields compared between a preset and the checkpoint's config (CLIP fields only for i2v/flf2v).
_FIELDS = ("model_type", "dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim",
           "freq_dim", "text_len", "text_dim", "eps", "patch_size", "rope_max_len",
           "rope_theta")
_CLIP_FIELDS = ("clip_dim", "clip_len")


def architecture(src: str, preset, layout: str = "auto"):
    """``(cfg, layout, folder)``: the checkpoint's own config, checked against ``preset``."""
    from gvc_jax.weights import folder as wf

    where = resolve(src)
    if os.path.isdir(where) and os.path.isfile(os.path.join(where, "config.json")):
        cfg, own_layout, where = wf.dit_config(src)
        if preset is not None:
            keys = _FIELDS + (_CLIP_FIELDS if cfg.model_type != "t2v" else ())
            common.check_preset(where, preset.name, preset, cfg, keys)
            cfg.name = preset.name
    elif preset is not None:
        cfg, own_layout = preset, None
    else:
        raise CheckpointError(f"{where}: no config.json to read the DiT architecture from; "
                              "name a preset with --config")
    if layout == "auto":
        layout = own_layout or detect_layout(where)
    return cfg, layout, where


def _convert(argv) -> int:
    from configs.wan_dit import NAMES, get_config

    ap = common.parser("gvc-convert dit", "Convert a Wan 2.1 DiT checkpoint (official or "
                       "diffusers layout) to an orbax folder.",
                       src_help="download folder, its transformer/ folder, or a .safetensors "
                                "file (then --config names the architecture)",
                       out_help="output folder (orbax checkpoint in OUT/params + meta.json), or "
                                "a .safetensors file",
                       presets=NAMES, layouts=LAYOUTS)
    a = ap.parse_args(argv)
    preset = common.preset(get_config, a.config)
    common.check_output(a.out)
    common.require(a.src)
    cfg, layout, where = architecture(a.src, preset, a.layout)
    conv = conversion(read(where, layout), cfg, dtype=a.dtype)
    with common.naming(where):
        arrays, fp = conv.run(common.progress_enabled(a))
    meta = common.meta("wan_dit", cfg, layout, conv, fp)
    return common.finish(arrays, a.out, meta)


def cli_convert(argv=None) -> int:
    """``gvc-convert dit SRC OUT [--config NAME] [--layout auto|official|diffusers]
    [--dtype float32|bfloat16]``."""
    return common.run(_convert, argv)
