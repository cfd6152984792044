"""``gvc-convert clip``: the command line of :mod:`gvc_jax.weights.clip`.

There is no folder reader for CLIP yet: the architecture is the ``--config`` preset (default
``vit-h-14``, the only size Wan uses); a checkpoint of another size fails the conversion's
shape checks (exit 3). ``OUT`` is an orbax folder or a ``.safetensors`` file, as for ``t5``.
"""
from __future__ import annotations

import re

from convert_weights import common


def _convert(argv) -> int:
    from configs.wan_clip import get_config
    from gvc_jax.weights import clip as lib
    from gvc_jax.weights.progress import bar
    from gvc_jax.weights.sources import iter_safetensors_folder, iter_torch_zip
    from gvc_jax.weights.table import abstract_targets, convert, fingerprint

    ap = common.parser("gvc-convert clip", "Convert a CLIP ViT-H/14 vision checkpoint.",
                       src_help="download folder, its image_encoder/ folder, or the checkpoint "
                                "file", out_help="output orbax folder, or a .safetensors file",
                       presets=("vit-h-14", "tiny"), layouts=("official", "diffusers"),
                       config_help="architecture preset (default vit-h-14; tiny for tests)")
    a = ap.parse_args(argv)
    cfg = common.preset(get_config, a.config or "vit-h-14").copy_and_resolve_references()
    common.check_output(a.out)
    common.require(a.src)
    path, layout = lib.resolve(a.src, a.layout)
    raw = list(iter_torch_zip(path) if layout == "official"
               else iter_safetensors_folder(path, prefix="model"))
    own, dt = common.out_dtype(None, raw), common.out_dtype(a.dtype, raw)
    cfg.param_dtype = common.dtype_name(dt)
    ignore = lib.ignored(cfg, layout)
    items = list(lib.split_qkv(raw, ignore) if layout == "official" else raw)
    total = sum(not any(re.fullmatch(p, k) for p in ignore) for k, _ in items)
    with bar(total, "converting CLIP", common.progress_enabled(a)) as tick, \
            common.naming(path):
        arrays = convert(items, lib.rules(cfg, layout), abstract_targets(lib.model_factory(cfg)),
                         ignore=ignore, progress=tick)
    meta = {"family": "clip", "config": cfg.name, "layout": layout,
            "fingerprint": fingerprint(arrays, name=f"clip:{cfg.name}"),
            "dtype": common.dtype_name(dt), "source_dtype": common.dtype_name(own)}
    return common.finish(arrays, a.out, meta)


def cli_convert(argv=None) -> int:
    """``gvc-convert clip SRC OUT [--config vit-h-14|tiny] [--layout auto|official|diffusers]
    [--dtype float32|bfloat16]``."""
    return common.run(_convert, argv)
