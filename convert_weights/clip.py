"""``gvc-convert clip``: the command line of :mod:`gvc_jax.weights.clip`.

There is no folder reader for CLIP yet: the architecture is the ``--config`` preset (default
``vit-h-14``, the only size Wan uses); a checkpoint of another size fails the conversion's
shape checks (exit 3). ``OUT`` is an orbax folder or a ``.safetensors`` file, as for ``t5``.
"""
from __future__ import annotations

from convert_weights import common


def _convert(argv) -> int:
    from configs.wan_clip import get_config
    from gvc_jax.weights import clip as lib

    ap = common.parser("gvc-convert clip", "Convert a CLIP ViT-H/14 vision checkpoint.",
                       src_help="download folder, its image_encoder/ folder, or the checkpoint "
                                "file", out_help="output orbax folder, or a .safetensors file",
                       presets=("vit-h-14", "tiny"), layouts=("official", "diffusers"),
                       config_help="architecture preset (default vit-h-14; tiny for tests)")
    a = ap.parse_args(argv)
    cfg = common.preset(get_config, a.config or "vit-h-14")
    common.check_output(a.out)
    common.require(a.src)
    ckpt = lib.read(a.src, a.layout)
    conv = lib.conversion(ckpt, cfg, dtype=a.dtype)
    with common.naming(ckpt.path):
        arrays, fp = conv.run(common.progress_enabled(a))
    meta = common.meta("clip", cfg, ckpt.layout, conv, fp)
    return common.finish(arrays, a.out, meta)


def cli_convert(argv=None) -> int:
    """``gvc-convert clip SRC OUT [--config vit-h-14|tiny] [--layout auto|official|diffusers]
    [--dtype float32|bfloat16]``."""
    return common.run(_convert, argv)
