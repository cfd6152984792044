"""DiT converter: the tables cover every parameter of every variant in both layouts, errors
name the offending tensor, the CLI writes an orbax checkpoint that reads back identically."""
from __future__ import annotations

import json

import numpy as np
import pytest

from configs.wan_dit import NAMES, get_config
from convert_weights import cli
from gvc_jax.weights.cache import load_arrays
from gvc_jax.weights.dit import (DIFFUSERS_RULES, OFFICIAL_RULES, check_coverage, conversion,
                                 detect_layout, dit_factory, load_dit_orbax, read)
from gvc_jax.weights.table import ConversionError, load_into
from gvc_jax.models.wan.dit import has_clip
from gvc_jax.testing.refs import diffusers_kwargs, wan22_kwargs

torch = pytest.importorskip("torch")
RELEASED = ("t2v-1.3b", "t2v-14b", "i2v-14b-480p", "i2v-14b-720p", "flf2v-14b-720p")
WITH_DIFFUSERS = RELEASED + ("tiny-t2v", "tiny-i2v", "tiny-flf2v")


def _diffusers_keys(cfg) -> dict:
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        m = WanTransformer3DModel(**diffusers_kwargs(cfg))
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def _official_keys(cfg) -> dict:
    """Official key set: the wan22 ``WanModel`` (meta device) plus, for Wan 2.1 i2v/flf2v, the
    CLIP branch (``img_emb.proj.{0,1,3,4}``, ``cross_attn.{k_img,v_img,norm_k_img}``,
    FLF2V ``img_emb.emb_pos``) that wan22 no longer ships."""
    from gvc_jax.testing.wan22 import load_wan22

    mod = load_wan22("model")
    base = cfg.copy_and_resolve_references()
    if has_clip(cfg.model_type):
        base.model_type = "i2v-noclip"
    with torch.device("meta"):
        m = mod.WanModel(**wan22_kwargs(base))
    keys = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    if has_clip(cfg.model_type):
        d, c = cfg.dim, cfg.clip_dim
        for i in range(cfg.num_layers):
            p = f"blocks.{i}.cross_attn."
            keys.update({p + "k_img.weight": (d, d), p + "k_img.bias": (d,),
                         p + "v_img.weight": (d, d), p + "v_img.bias": (d,),
                         p + "norm_k_img.weight": (d,)})
        keys.update({"img_emb.proj.0.weight": (c,), "img_emb.proj.0.bias": (c,),
                     "img_emb.proj.1.weight": (c, c), "img_emb.proj.1.bias": (c,),
                     "img_emb.proj.3.weight": (d, c), "img_emb.proj.3.bias": (d,),
                     "img_emb.proj.4.weight": (d,), "img_emb.proj.4.bias": (d,)})
        if cfg.model_type == "flf2v":
            keys["img_emb.emb_pos"] = (1, 2 * cfg.clip_len, c)
    return keys


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_official_keys_agree_with_diffusers_single_file_converter(name):
    """Cross-checks the assumed official key set: diffusers' own official->diffusers renaming
    must turn it into exactly the diffusers model's keys and shapes."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    cfg = get_config(name)
    off = _official_keys(cfg)
    fake = {k: torch.empty(s, device="meta") for k, s in off.items()}
    if "img_emb.emb_pos" in fake:  # not in diffusers' rename table; it is its pos_embed
        fake["condition_embedder.image_embedder.pos_embed"] = fake.pop("img_emb.emb_pos")
    renamed = {k: tuple(v.shape) for k, v in convert_wan_transformer_to_diffusers(fake).items()}
    assert renamed == _diffusers_keys(cfg)


@pytest.mark.parametrize("name", WITH_DIFFUSERS)
def test_diffusers_table_covers_variant(name):
    check_coverage(_diffusers_keys(get_config(name)), get_config(name), "diffusers")


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("tiny-t2v-")])
def test_official_table_covers_variant(name):
    cfg = get_config(name)
    check_coverage(_official_keys(cfg), cfg, "official")


def test_every_rule_is_used():
    """No dead rows: each rule maps at least one key of some variant."""
    from gvc_jax.weights.table import map_key

    for rules, keysets in ((OFFICIAL_RULES, [_official_keys(get_config(n)) for n in NAMES]),
                           (DIFFUSERS_RULES, [_diffusers_keys(get_config(n))
                                              for n in WITH_DIFFUSERS])):
        used = {map_key(k, rules)[2] for ks in keysets for k in ks}
        assert set(rules) <= used, [r.pattern for r in rules if r not in used]


# ------------------------------------------------------------------ errors on bad checkpoints
def _tiny_official(tmp_path, mutate=None):
    from safetensors.numpy import save_file

    cfg = get_config("tiny-t2v")
    rng = np.random.default_rng(0)
    sd = {k: rng.standard_normal(s).astype(np.float32) for k, s in _official_keys(cfg).items()}
    if mutate:
        mutate(sd)
    save_file(sd, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    return cfg, sd


def _convert(path, cfg, dtype=None):
    return conversion(read(path), cfg, dtype=dtype).run()


@pytest.mark.parametrize("mutate,needle", [
    (lambda sd: sd.update({"blocks.0.self_attn.extra.weight": np.zeros(3, np.float32)}),
     "blocks.0.self_attn.extra.weight"),
    (lambda sd: sd.pop("blocks.1.ffn.2.bias"), "blocks/ffn/fc2/bias"),
    (lambda sd: sd.update({"head.head.weight": np.zeros((63, 64), np.float32)}), "head.head.weight"),
    (lambda sd: sd.update({"blocks.2.norm3.bias": np.zeros(64, np.float32)}), "layer 2"),
])
def test_bad_checkpoint_names_the_tensor(tmp_path, mutate, needle):
    cfg, _ = _tiny_official(tmp_path, mutate)
    conv = conversion(read(str(tmp_path)), cfg)
    with pytest.raises(ConversionError, match=needle.replace(".", r"\.")):
        conv.run()
    with pytest.raises(ConversionError, match=needle.replace(".", r"\.")):
        conv.fingerprint()  # the read-only pass refuses the same checkpoints


def test_cli_writes_orbax_roundtrip(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    cfg, sd = _tiny_official(tmp_path / "src")
    assert detect_layout(str(tmp_path / "src")) == "official"
    out = tmp_path / "out"
    assert cli.main(["dit", str(tmp_path / "src"), str(out), "--config", "tiny-t2v"]) == 0
    report = json.loads(capsys.readouterr().out)
    import jax.numpy as jnp
    arrays, fp = _convert(str(tmp_path / "src"), cfg)  # the source dtype
    assert report["fingerprint"] == fp and report["layout"] == "official"
    assert report["dtype"] == report["source_dtype"] == "float32"
    back = load_arrays(str(out))
    assert set(back) == set(arrays)
    for k in arrays:
        assert back[k].dtype == arrays[k].dtype
        np.testing.assert_array_equal(back[k], arrays[k])
    assert json.loads((out / "meta.json").read_text())["fingerprint"] == fp
    f32 = dict(dtype=jnp.float32, param_dtype=jnp.float32)
    m1, m2 = load_into(dit_factory(cfg, **f32), arrays), load_dit_orbax(str(out), cfg, **f32)
    assert m2.fingerprint == fp
    x, t = jnp.ones((1, 16, 1, 2, 2)), jnp.array([10.0])
    ctx = jnp.ones((1, cfg.text_len, cfg.text_dim))
    np.testing.assert_array_equal(np.asarray(m1(x, t, ctx)), np.asarray(m2(x, t, ctx)))
    with pytest.raises(ConversionError, match="fingerprint"):  # wrong config name
        load_dit_orbax(str(out), get_config("tiny-t2v-wan22"))
    k = sd["blocks.1.self_attn.q.weight"]  # spot check of the transform and the layer axis
    np.testing.assert_array_equal(arrays["blocks/self_attn/q/kernel"][1].astype(np.float32),
                                  k.T.astype(arrays["blocks/self_attn/q/kernel"].dtype)
                                  .astype(np.float32))


def test_cli_bad_input_exit_code(tmp_path, capsys):
    assert cli.main(["dit", str(tmp_path / "nothing"), str(tmp_path / "o"), "--config",
                     "tiny-t2v"]) == 3
    assert "gvc-convert: error:" in capsys.readouterr().err
    assert cli.main(["nope"]) == 2


def test_coverage_check_detects_gaps():
    cfg = get_config("tiny-i2v")
    keys = _diffusers_keys(cfg)
    keys.pop("blocks.1.attn2.add_k_proj.weight")
    with pytest.raises(ConversionError, match="k_img"):
        check_coverage(keys, cfg, "diffusers")
    keys = _diffusers_keys(cfg)
    keys["blocks.0.attn2.to_q.weight"] = (cfg.dim, cfg.dim + 1)
    with pytest.raises(ConversionError, match="to_q"):
        check_coverage(keys, cfg, "diffusers")
    with pytest.raises(ConversionError):  # an i2v checkpoint is not a t2v model
        check_coverage(_diffusers_keys(cfg), get_config("tiny-t2v"), "diffusers")
