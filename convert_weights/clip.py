"""``gvc-convert clip``: the command line of :mod:`gvc_jax.weights.clip`."""
from __future__ import annotations

from gvc_jax.weights.clip import convert_clip, resolve

def cli_convert(argv=None) -> int:
    """``gvc-convert clip SRC OUT [--config vit-h-14] [--layout auto]``."""
    from configs.wan_clip import get_config
    from convert_weights.t5 import run_cli

    def conv(src, cfg, layout):
        layout = resolve(src, layout)[1]
        return convert_clip(src, cfg, layout), layout

    return run_cli(argv, family="clip", prog="gvc-convert clip", what="CLIP ViT-H/14 vision",
                   convert_fn=conv, get_config=get_config, default_config="vit-h-14")
