"""``gvc-convert vae``: the command line of :mod:`gvc_jax.weights.vae`.

The architecture is read from the checkpoint: the diffusers ``vae/config.json``, or the tensor
shapes of the official ``Wan2.1_VAE.pth`` (see :mod:`gvc_jax.weights.folder`); ``--config`` is
an optional preset checked against it. The output is one ``.safetensors`` file.
"""
from __future__ import annotations

import os

from convert_weights import common
from gvc_jax.weights import vae as lib
from gvc_jax.weights.sources import CheckpointError

# Architecture fields compared between a preset and the checkpoint.
_FIELDS = ("base_dim", "z_dim", "dim_mult", "num_res_blocks", "temperal_downsample",
           "latents_mean", "latents_std")


def _converted_config(path: str) -> str | None:
    """The config name a ``gvc-convert vae`` output records in its metadata."""
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as f:
            return (f.metadata() or {}).get("config")
    except Exception:  # noqa: BLE001 - unreadable here means: no recorded config
        return None


def locate(src: str, layout: str = "auto") -> tuple[str, str]:
    """``(path, layout)`` of the VAE checkpoint in ``src`` (download folder, ``vae/`` folder,
    ``Wan2.1_VAE.pth``, a diffusers or converted ``.safetensors``)."""
    from gvc_jax.weights import folder as wf

    if os.path.isfile(src) and src.endswith(".safetensors") and layout in ("auto", "converted") \
            and lib.is_converted_file(src):
        return src, "converted"
    if layout == "converted":
        raise CheckpointError(f"{src}: not a gvc-convert vae output")
    try:
        path, own = wf.vae_source(src)
    except CheckpointError:
        if not common.bare_folder(src):
            raise
        off = os.path.join(src, wf.VAE_FILE)  # the checkpoint's files in a folder of their own
        if os.path.isfile(off):
            path, own = off, "official"
        elif any(f.endswith(".safetensors") for f in os.listdir(src)):
            path, own = src, "diffusers"
        else:
            raise
    return path, own if layout == "auto" else layout


def architecture(path: str, layout: str, preset, name: str | None):
    """The checkpoint's own config (checked against ``preset``), or the preset where the
    checkpoint declares none."""
    from configs.wan_vae import get_config
    from gvc_jax.weights import folder as wf

    cfg = None
    if layout == "official":
        cfg = wf.vae_config(path, "official")
    elif layout == "diffusers":
        folder = common.sibling_config(path)
        if folder is not None:
            cfg = wf.vae_config(folder, "diffusers")
    elif layout == "converted":
        recorded = _converted_config(path)
        if recorded:
            try:
                cfg = get_config(recorded)
            except ValueError:
                cfg = None
    if cfg is None:
        if preset is None:
            raise CheckpointError(f"{path}: no config to read the VAE architecture from; name "
                                  "a preset with --config")
        return preset
    if preset is not None:
        common.check_preset(path, name, preset, cfg, _FIELDS)
        cfg.name = preset.name
    return cfg


def _convert(argv) -> int:
    from configs.wan_vae import get_config

    ap = common.parser("gvc-convert vae", "Convert a Wan 2.1 VAE checkpoint to one "
                       ".safetensors file.",
                       src_help="download folder, its vae/ folder, Wan2.1_VAE.pth, or a "
                                ".safetensors file",
                       out_help="output .safetensors", presets=("wan2.1", "tiny"),
                       layouts=lib.LAYOUTS)
    a = ap.parse_args(argv)
    preset = common.preset(get_config, a.config)
    common.check_output(a.out, file_only=True)
    common.require(a.src)
    path, layout = locate(a.src, a.layout)
    cfg = architecture(path, layout, preset, a.config)
    conv = lib.conversion(lib.read(path, layout), cfg, dtype=a.dtype)
    with common.naming(path):
        arrays, fp = conv.run(common.progress_enabled(a))
    meta = common.meta("wan_vae", cfg, layout, conv, fp)
    return common.finish(arrays, a.out, meta)


def cli_convert(argv=None) -> int:
    """``gvc-convert vae SRC OUT.safetensors [--config wan2.1|tiny]
    [--layout auto|official|diffusers|converted] [--dtype float32|bfloat16]``."""
    return common.run(_convert, argv)
