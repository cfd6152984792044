"""umT5-XXL encoder checkpoints -> :class:`gvc_jax.models.wan.t5.UMT5Encoder`.

Two layouts:

* ``official``: ``models_t5_umt5-xxl-enc-bf16.pth``, the ``state_dict`` of
  Wan's ``T5Encoder`` (``blocks.{i}.attn.q.weight``, ...), read with the
  restricted unpickler (no pickled code runs).
* ``diffusers``: the ``text_encoder/`` folder of a ``*-Diffusers`` repo,
  transformers ``UMT5EncoderModel`` keys in safetensors
  (``encoder.block.{i}.layer.0.SelfAttention.q.weight``, ...).

Every rule is listed; a key that matches none is an error. The only key ever
dropped is ``encoder.embed_tokens.weight`` when ``shared.weight`` is present
too: transformers ties the two, so they hold the same table.
"""
from __future__ import annotations


import numpy as np

from gvc_jax.weights.sources import (iter_safetensors_folder, resolve_checkpoint,
                                     iter_torch_zip)
from gvc_jax.weights.table import (Rule, abstract_targets,
                                   convert, fingerprint, load_into)

OFFICIAL_FILE = "models_t5_umt5-xxl-enc-bf16.pth"


def _heads_in(cfg):
    n, h = cfg.heads, cfg.dim_attn // cfg.heads
    return lambda a: a.T.reshape(cfg.dim, n, h)          # [n*h, d] -> [d, n, h]


def _heads_out(cfg):
    n, h = cfg.heads, cfg.dim_attn // cfg.heads
    return lambda a: a.T.reshape(n, h, cfg.dim)          # [d, n*h] -> [n, h, d]


def rules(cfg, layout: str) -> list[Rule]:
    """The ordered table for one layout ('official' or 'diffusers')."""
    hi, ho = _heads_in(cfg), _heads_out(cfg)
    if layout == "official":
        b = r"blocks\.(\d+)\."
        return [
            Rule(r"token_embedding\.weight", "embed"),
            Rule(b + r"norm1\.weight", "blocks/attn_norm@{0}"),
            Rule(b + r"attn\.q\.weight", "blocks/q@{0}", hi),
            Rule(b + r"attn\.k\.weight", "blocks/k@{0}", hi),
            Rule(b + r"attn\.v\.weight", "blocks/v@{0}", hi),
            Rule(b + r"attn\.o\.weight", "blocks/o@{0}", ho),
            Rule(b + r"pos_embedding\.embedding\.weight", "blocks/rel_bias@{0}"),
            Rule(b + r"norm2\.weight", "blocks/ffn_norm@{0}"),
            Rule(b + r"ffn\.gate\.0\.weight", "blocks/gate@{0}", "linear"),
            Rule(b + r"ffn\.fc1\.weight", "blocks/fc1@{0}", "linear"),
            Rule(b + r"ffn\.fc2\.weight", "blocks/fc2@{0}", "linear"),
            Rule(r"norm\.weight", "final_norm"),
        ]
    if layout == "diffusers":
        b = r"encoder\.block\.(\d+)\.layer\."
        return [
            Rule(r"shared\.weight", "embed"),
            Rule(r"encoder\.embed_tokens\.weight", "embed"),
            Rule(b + r"0\.layer_norm\.weight", "blocks/attn_norm@{0}"),
            Rule(b + r"0\.SelfAttention\.q\.weight", "blocks/q@{0}", hi),
            Rule(b + r"0\.SelfAttention\.k\.weight", "blocks/k@{0}", hi),
            Rule(b + r"0\.SelfAttention\.v\.weight", "blocks/v@{0}", hi),
            Rule(b + r"0\.SelfAttention\.o\.weight", "blocks/o@{0}", ho),
            Rule(b + r"0\.SelfAttention\.relative_attention_bias\.weight", "blocks/rel_bias@{0}"),
            Rule(b + r"1\.layer_norm\.weight", "blocks/ffn_norm@{0}"),
            # HF gated-gelu: wi_0 goes through the activation (= Wan's gate), wi_1 is linear.
            Rule(b + r"1\.DenseReluDense\.wi_0\.weight", "blocks/gate@{0}", "linear"),
            Rule(b + r"1\.DenseReluDense\.wi_1\.weight", "blocks/fc1@{0}", "linear"),
            Rule(b + r"1\.DenseReluDense\.wo\.weight", "blocks/fc2@{0}", "linear"),
            Rule(r"encoder\.final_layer_norm\.weight", "final_norm"),
        ]
    raise ValueError(f"unknown T5 layout {layout!r}")


def resolve(path: str, layout: str = "auto") -> tuple[str, str]:
    """Finds the checkpoint under ``path`` and its layout."""
    return resolve_checkpoint(path, layout, OFFICIAL_FILE, "text_encoder", "umT5")


def _source(path: str, layout: str):
    if layout == "official":
        return list(iter_torch_zip(path))
    items = list(iter_safetensors_folder(path, prefix="model"))
    keys = {k for k, _ in items}
    if "shared.weight" in keys and "encoder.embed_tokens.weight" in keys:
        items = [(k, f) for k, f in items if k != "encoder.embed_tokens.weight"]
    return items


def model_factory(cfg):
    from flax import nnx

    from gvc_jax.models.wan.t5 import UMT5Encoder
    return lambda: UMT5Encoder(cfg, rngs=nnx.Rngs(0))


def convert_t5(path: str, cfg, layout: str = "auto", progress=None) -> dict[str, np.ndarray]:
    """Reads a checkpoint into the flat ``{path: array}`` state of ``UMT5Encoder(cfg)``."""
    path, layout = resolve(path, layout)
    targets = abstract_targets(model_factory(cfg))
    return convert(_source(path, layout), rules(cfg, layout), targets, progress=progress)


def load_t5(path: str, cfg, layout: str = "auto"):
    """Returns ``(model, fingerprint)``; the fingerprint matches ``gvc-convert t5``'s."""
    arrays = convert_t5(path, cfg, layout)
    return load_into(model_factory(cfg), arrays), fingerprint(arrays, name=f"umt5:{cfg.name}")


# ------------------------------------------------------------------ the family loader
def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(UMT5Encoder, fingerprint)`` from a download folder
    (``models_t5_umt5-xxl-enc-bf16.pth`` or ``text_encoder/``) or the checkpoint itself; the
    official file's sizes come from its tensor shapes."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import cached_convert
    from gvc_jax.weights.progress import bar, dominant_float_dtype

    src, layout = wf.t5_source(path)
    cfg = wf.t5_config(src, layout)
    cfg.dtype = cfg.param_dtype = dtype

    def conv():
        items = _source(src, layout)
        stored = dominant_float_dtype(items)
        c = cfg.copy_and_resolve_references()
        c.param_dtype = "bfloat16" if str(stored) == "bfloat16" else "float32"
        with bar(len(items), "converting the text encoder", progress) as tick:
            arrays = convert(items, rules(c, layout), abstract_targets(model_factory(c)),
                             progress=tick)
        return arrays, fingerprint(arrays, name=f"umt5:{cfg.name}")

    arrays, fp, how = cached_convert("umt5", wf.t5_files(src), conv, cache_dir=cache_dir,
                                     extra=cfg.name, log=log, label=src)
    model = load_into(model_factory(cfg), arrays)
    if info is not None:
        info.update(how, config=cfg)
    return model, fp
