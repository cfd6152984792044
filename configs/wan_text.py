"""umT5 text-encoder configs (Wan 2.1 uses the umT5-XXL encoder).

``get_config("umt5-xxl")`` is the real model (wan/modules/t5.py ``umt5_xxl``);
``get_config("tiny")`` is a few-KB model for CPU tests.
"""
import ml_collections


def get_config(arg: str = "umt5-xxl") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = arg
    c.eps = 1e-6              # T5 RMSNorm epsilon
    c.max_distance = 128      # relative-position bucket range
    c.text_len = 512          # Wan pads/truncates prompts to this many tokens
    c.param_dtype = "bfloat16"
    c.dtype = "bfloat16"      # compute dtype of matmuls; norms/softmax stay fp32
    c.eos_id = 1
    c.pad_id = 0
    if arg == "umt5-xxl":
        c.vocab = 256384
        c.dim = 4096
        c.dim_attn = 4096
        c.ffn = 10240
        c.heads = 64
        c.layers = 24
        c.buckets = 32
    elif arg == "tiny":
        c.vocab = 96
        c.dim = 32
        c.dim_attn = 24
        c.ffn = 48
        c.heads = 4
        c.layers = 2
        c.buckets = 8
        c.max_distance = 128  # fixed in the official T5RelativeEmbedding
        c.text_len = 16
        c.param_dtype = "float32"
        c.dtype = "float32"
    else:
        raise ValueError(f"unknown text-encoder config {arg!r} (umt5-xxl, tiny)")
    return c
