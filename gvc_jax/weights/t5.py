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

:func:`read` lists a checkpoint's tensors, :func:`conversion` is the one conversion (used by
:func:`load` through the cache and by ``gvc-convert t5``).
"""
from __future__ import annotations

from gvc_jax.weights.sources import (Checkpoint, iter_safetensors_folder, iter_torch_zip,
                                     resolve_checkpoint)
from gvc_jax.weights.table import Conversion, Rule, abstract_targets, dtype_name, np_dtype

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


def read(path: str, layout: str = "auto") -> Checkpoint:
    """The tensors of a umT5 checkpoint (the official ``.pth``, a ``text_encoder/`` folder or a
    download folder holding either), read lazily."""
    path, layout = resolve(path, layout)
    if layout == "official":
        return Checkpoint(path, layout, list(iter_torch_zip(path)))
    items = list(iter_safetensors_folder(path, prefix="model"))
    keys = {k for k, _ in items}
    if "shared.weight" in keys and "encoder.embed_tokens.weight" in keys:  # one tied table
        items = [(k, f) for k, f in items if k != "encoder.embed_tokens.weight"]
    return Checkpoint(path, layout, items)


def model_factory(cfg):
    from flax import nnx

    from gvc_jax.models.wan.t5 import UMT5Encoder
    return lambda: UMT5Encoder(cfg, rngs=nnx.Rngs(0))


def conversion(ckpt: Checkpoint, cfg, *, dtype=None) -> Conversion:
    """The conversion of ``ckpt`` into ``UMT5Encoder(cfg)`` params stored in ``dtype`` (default:
    the checkpoint's own float dtype); ``.run()`` gives ``(arrays, fingerprint)``."""
    from gvc_jax.weights.progress import dominant_float_dtype

    items = ckpt.tensors
    own = np_dtype(dominant_float_dtype(items))
    dt = own if dtype is None else np_dtype(dtype)
    c = cfg.copy_and_resolve_references()
    c.param_dtype = dtype_name(dt)
    return Conversion(items, rules(c, ckpt.layout), abstract_targets(model_factory(c)),
                      name=f"umt5:{cfg.name}", dtype=dt, source_dtype=own,
                      what="the text encoder")


# ------------------------------------------------------------------ the family loader
def cache_entry(path: str):
    """What :func:`load` reads from ``path`` (a download folder or the checkpoint), as a
    :class:`gvc_jax.weights.cache.Entry`: bfloat16 weights stay bfloat16, others become
    float32."""
    from gvc_jax.weights import folder as wf
    from gvc_jax.weights.cache import Entry
    from gvc_jax.weights.progress import bf16_or_f32

    src, layout = wf.t5_source(path)
    cfg = wf.t5_config(src, layout)

    def conv():
        ckpt = read(src, layout)
        return conversion(ckpt, cfg, dtype=bf16_or_f32(ckpt.tensors))

    return Entry("umt5", wf.t5_files(src), cfg.name, src, cfg, conv)


def load(path: str, *, dtype: str = "float32", cache_dir=None, log=None, progress: bool = False,
         info: dict | None = None):
    """``(UMT5Encoder, fingerprint)`` from a download folder
    (``models_t5_umt5-xxl-enc-bf16.pth`` or ``text_encoder/``) or the checkpoint itself; the
    official file's sizes come from its tensor shapes. ``dtype`` is the compute and parameter
    dtype."""
    from gvc_jax.weights import cache
    from gvc_jax.weights.table import load_into

    entry = cache_entry(path)
    arrays, fp, how = cache.load(entry, cache_dir=cache_dir, log=log, progress=progress)
    cfg = entry.cfg
    cfg.dtype = cfg.param_dtype = dtype
    model = load_into(model_factory(cfg), arrays)
    if info is not None:
        info.update(how, config=cfg)
    return model, fp
