"""Configs of the Wan 2.1 VAE: ``get_config("wan2.1")`` (full) and ``get_config("tiny")``.

Latent mean/std tables are the official ones (``Wan2_1_VAE`` and diffusers'
``AutoencoderKLWan`` config).
"""
import ml_collections

LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


def get_config(arg: str = "wan2.1") -> ml_collections.ConfigDict:
    """``arg``: 'wan2.1' or 'tiny'; append ',bf16' for bfloat16 compute, ',highest' for
    full-fp32 conv precision on accelerators (TF32 is the GPU default)."""
    name, *opts = (arg or "wan2.1").split(",")
    c = ml_collections.ConfigDict()
    c.name = name
    c.z_dim = 16
    c.dim_mult = (1, 2, 4, 4)
    c.num_res_blocks = 2
    c.temperal_downsample = (False, True, True)
    c.latents_mean = LATENTS_MEAN
    c.latents_std = LATENTS_STD
    c.dtype = "float32"
    c.precision = "default"
    if name in ("wan2.1", "wan2.1-vae"):
        c.base_dim = 96
    elif name == "tiny":
        c.base_dim = 8
    else:
        raise ValueError(f"unknown Wan VAE config {name!r} (wan2.1, tiny)")
    for o in opts:
        if o == "bf16":
            c.dtype = "bfloat16"
        elif o in ("highest", "high", "default"):
            c.precision = o
        else:
            raise ValueError(f"unknown Wan VAE config option {o!r}")
    return c
