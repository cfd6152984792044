"""CLIP vision-tower configs (Wan 2.1 I2V/FLF2V image conditioning).

``vit-h-14`` is the vision half of open-clip XLM-RoBERTa-large ViT-H/14
(wan/modules/clip.py ``clip_xlm_roberta_vit_h_14``). Wan reads the hidden
states after block 31 of 32 with no post-norm, so only ``used_layers`` blocks
are built; the converters drop the last block, the post-norm and the head
with explicit, documented rules.
"""
import ml_collections


def get_config(arg: str = "vit-h-14") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = arg
    c.eps = 1e-5
    c.param_dtype = "bfloat16"
    c.dtype = "bfloat16"
    # OpenAI CLIP normalisation, used by both the official code and diffusers.
    c.mean = (0.48145466, 0.4578275, 0.40821073)
    c.std = (0.26862954, 0.26130258, 0.27577711)
    if arg == "vit-h-14":
        c.image_size = 224
        c.patch = 14
        c.dim = 1280
        c.mlp = 5120
        c.heads = 16
        c.layers = 32        # blocks in the checkpoint
        c.used_layers = 31   # blocks Wan runs (use_31_block=True / hidden_states[-2])
    elif arg == "tiny":
        c.image_size = 28
        c.patch = 14
        c.dim = 32
        c.mlp = 64
        c.heads = 4
        c.layers = 3
        c.used_layers = 2
        c.param_dtype = "float32"
        c.dtype = "float32"
    else:
        raise ValueError(f"unknown CLIP config {arg!r} (vit-h-14, tiny)")
    c.tokens = (c.image_size // c.patch) ** 2 + 1
    return c
