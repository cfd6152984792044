"""umT5 encoder: parity with transformers and the official Wan code, converter coverage."""
import numpy as np
import pytest
import torch

from configs.wan_text import get_config
from gvc_jax.weights import t5 as ct5
from gvc_jax.weights.cache import load_arrays
from gvc_jax.weights.prompt import PromptEncoder
from gvc_jax.weights.table import (ConversionError, abstract_targets, check_coverage, fingerprint,
                                   load_into)
from gvc_jax.models.wan import t5 as mt5


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


CFG = get_config("tiny")


def _convert(path, cfg=CFG, layout="auto"):
    """``(arrays, fingerprint)`` with the parameters in ``cfg.param_dtype``."""
    return ct5.conversion(ct5.read(path, layout), cfg, dtype=cfg.param_dtype).run()


def _load(path, cfg=CFG):
    arrays, fp = _convert(path, cfg)
    return load_into(ct5.model_factory(cfg), arrays), fp


def _ids_mask(lens, L, vocab, seed=0):
    g = np.random.default_rng(seed)
    ids = np.zeros((len(lens), L), np.int64)
    mask = np.zeros((len(lens), L), np.int64)
    for i, n in enumerate(lens):
        ids[i, :n - 1] = g.integers(2, vocab, n - 1)
        ids[i, n - 1] = 1  # eos
        mask[i, :n] = 1
    return ids, mask


def _randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or "layer_norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import UMT5Config, UMT5EncoderModel
    torch.manual_seed(0)
    c = UMT5Config(vocab_size=CFG.vocab, d_model=CFG.dim, d_kv=CFG.dim_attn // CFG.heads,
                   d_ff=CFG.ffn, num_layers=CFG.layers, num_heads=CFG.heads,
                   relative_attention_num_buckets=CFG.buckets,
                   relative_attention_max_distance=CFG.max_distance,
                   feed_forward_proj="gated-gelu", dropout_rate=0.0)
    m = UMT5EncoderModel(c).eval()
    _randomize(m, 1)
    d = tmp_path_factory.mktemp("wan_diffusers")
    m.save_pretrained(d / "text_encoder")
    return d, m


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    from gvc_jax.testing.wan22 import load_wan22
    t5_mod = load_wan22("t5")
    torch.manual_seed(0)
    enc = t5_mod.T5Encoder(vocab=CFG.vocab, dim=CFG.dim, dim_attn=CFG.dim_attn, dim_ffn=CFG.ffn,
                           num_heads=CFG.heads, num_layers=CFG.layers, num_buckets=CFG.buckets,
                           shared_pos=False, dropout=0.0).eval()
    _randomize(enc, 2)
    d = tmp_path_factory.mktemp("wan_official")
    torch.save(enc.state_dict(), d / ct5.OFFICIAL_FILE)
    return d, enc


def test_relative_buckets_match_transformers():
    from transformers.models.umt5.modeling_umt5 import UMT5Attention
    L = 600
    rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]
    # The HF method reads its parameters from ``self``; build a minimal stand-in.
    stub = type("S", (), {"relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
                          "is_decoder": False})()
    ref = UMT5Attention._relative_position_bucket(stub, rel).numpy()
    ours = mt5.relative_buckets(L, L, 32, 128)
    np.testing.assert_array_equal(ours, ref)


def test_transformers_parity(hf_folder):
    d, m = hf_folder
    model, fp = _load(str(d))  # auto: finds text_encoder/
    ids, mask = _ids_mask([CFG.text_len, 5, 1], CFG.text_len, CFG.vocab)
    with torch.no_grad():
        ref = m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    ref = ref * mask[..., None]  # Wan: trim to the prompt length, zero-pad
    out = np.asarray(mt5.encode_context(model, ids, mask))
    assert rel_l2(out, ref) <= 1e-5
    assert np.all(out[1, 5:] == 0) and np.all(out[2, 1:] == 0)
    assert len(fp) == 64


def test_official_parity_and_jit(official_file):
    d, enc = official_file
    arrays, _ = _convert(str(d))
    from flax import nnx
    model = load_into(ct5.model_factory(CFG), arrays)
    ids, mask = _ids_mask([7, CFG.text_len], CFG.text_len, CFG.vocab, seed=3)
    with torch.no_grad():
        full = enc(torch.from_numpy(ids), torch.from_numpy(mask))
    # T5EncoderModel.__call__: [u[:len]] per prompt; WanModel zero-pads to text_len.
    ref = np.zeros(full.shape, np.float32)
    for i, n in enumerate(mask.sum(1)):
        ref[i, :n] = full[i, :n].numpy()
    graphdef, state = nnx.split(model)
    out = np.asarray(mt5.make_apply(graphdef)(state, ids, mask))
    assert rel_l2(out, ref) <= 1e-5
    # The output at real tokens must not depend on what sits in the padding.
    ids2 = ids.copy()
    ids2[0, 7:] = 5
    out2 = np.asarray(mt5.make_apply(graphdef)(state, ids2, mask))
    np.testing.assert_allclose(out2, out, rtol=0, atol=1e-6)


def test_official_bf16_checkpoint(official_file, tmp_path):
    _, enc = official_file
    torch.save({k: v.to(torch.bfloat16) for k, v in enc.state_dict().items()}, tmp_path / "t5.pth")
    arrays, _ = _convert(str(tmp_path / "t5.pth"))
    want = enc.state_dict()["blocks.1.ffn.fc2.weight"].to(torch.bfloat16).float().numpy().T
    np.testing.assert_array_equal(arrays["blocks/fc2"][1], want)


def test_converters_agree_on_same_weights(official_file, hf_folder, tmp_path):
    """An official checkpoint renamed to HF keys converts to identical arrays."""
    _, enc = official_file
    sd = enc.state_dict()
    ren = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
    sub = {"norm1.weight": "0.layer_norm.weight", "attn.q.weight": "0.SelfAttention.q.weight",
           "attn.k.weight": "0.SelfAttention.k.weight", "attn.v.weight": "0.SelfAttention.v.weight",
           "attn.o.weight": "0.SelfAttention.o.weight",
           "pos_embedding.embedding.weight": "0.SelfAttention.relative_attention_bias.weight",
           "norm2.weight": "1.layer_norm.weight", "ffn.gate.0.weight": "1.DenseReluDense.wi_0.weight",
           "ffn.fc1.weight": "1.DenseReluDense.wi_1.weight", "ffn.fc2.weight": "1.DenseReluDense.wo.weight"}
    hf = {}
    for k, v in sd.items():
        if k in ren:
            hf[ren[k]] = v
        else:
            _, i, rest = k.split(".", 2)
            hf[f"encoder.block.{i}.layer.{sub[rest]}"] = v
    hf["encoder.embed_tokens.weight"] = sd["token_embedding.weight"].clone()  # tied alias, dropped
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in hf.items()}, tmp_path / "model.safetensors")
    a, _ = _convert(str(tmp_path), layout="diffusers")
    b, _ = _convert(str(official_file[0]), layout="official")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_full_size_table_coverage(layout):
    """Every umT5-XXL checkpoint key is mapped and every model param filled (no allocation)."""
    cfg = get_config("umt5-xxl")
    targets = abstract_targets(ct5.model_factory(cfg))
    if layout == "official":
        from gvc_jax.testing.wan22 import load_wan22
        t5_mod = load_wan22("t5")
        with torch.device("meta"):
            m = t5_mod.T5Encoder(vocab=cfg.vocab, dim=cfg.dim, dim_attn=cfg.dim_attn, dim_ffn=cfg.ffn,
                                 num_heads=cfg.heads, num_layers=cfg.layers, num_buckets=cfg.buckets,
                                 shared_pos=False)
    else:
        from transformers import UMT5Config, UMT5EncoderModel
        c = UMT5Config(vocab_size=cfg.vocab, d_model=cfg.dim, d_kv=cfg.dim_attn // cfg.heads, d_ff=cfg.ffn,
                       num_layers=cfg.layers, num_heads=cfg.heads, relative_attention_num_buckets=cfg.buckets,
                       feed_forward_proj="gated-gelu")
        with torch.device("meta"):
            m = UMT5EncoderModel(c)
    keys = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    if layout == "diffusers":
        keys = [kv for kv in keys if kv[0] != "encoder.embed_tokens.weight"]  # tied alias
    check_coverage(keys, ct5.rules(cfg, layout), targets)
    assert targets["blocks/q"][0] == (24, 4096, 64, 64)
    # A stray key or a missing layer is an error, not silently skipped.
    with pytest.raises(ConversionError, match="match no rule"):
        check_coverage(keys + [("encoder.extra.weight", (3,))], ct5.rules(cfg, layout), targets)
    with pytest.raises(ConversionError, match="missing"):
        check_coverage([kv for kv in keys if ".5." not in kv[0]], ct5.rules(cfg, layout), targets)


def test_bad_checkpoints(official_file, tmp_path):
    _, enc = official_file
    sd = dict(enc.state_dict())
    sd["blocks.0.attn.extra"] = torch.zeros(2)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(ConversionError, match="match no rule"):
        _convert(str(tmp_path / "extra.pth"))
    sd = dict(enc.state_dict())
    del sd["blocks.1.ffn.fc1.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(ConversionError, match="missing"):
        _convert(str(tmp_path / "missing.pth"))
    with pytest.raises(ConversionError, match="shape"):
        _convert(str(official_file[0] / ct5.OFFICIAL_FILE), _other_cfg())


def _other_cfg():
    c = get_config("tiny")
    c.ffn = 40
    return c


def test_cli_convert(official_file, tmp_path, capsys):
    import json
    from convert_weights.cli import main
    out = tmp_path / "t5_orbax"
    assert main(["t5", str(official_file[0]), str(out), "--config", "tiny"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    arrays, fp = _convert(str(official_file[0]))
    assert report["fingerprint"] == fp == fingerprint(arrays, name="umt5:tiny")
    assert report["layout"] == "official"
    back = load_arrays(str(out))
    assert back.keys() == arrays.keys()
    np.testing.assert_array_equal(back["blocks/q"], arrays["blocks/q"])
    assert main(["t5", str(tmp_path / "nope"), str(out), "--config", "tiny"]) == 3


def test_prompt_encoder_uses_cache_and_loads_lazily(official_file, tmp_path):
    d, enc = official_file
    fp = "tinyfp"

    def tokenizer(prompts):  # stand-in: prompt length -> that many tokens, then </s>
        ids, mask = np.zeros((len(prompts), CFG.text_len), np.int32), np.zeros((len(prompts), CFG.text_len), np.int32)
        for i, p in enumerate(prompts):
            n = min(len(p.split()), CFG.text_len - 1)
            ids[i, :n] = [2 + (sum(map(ord, w)) % (CFG.vocab - 2)) for w in p.split()[:n]]
            ids[i, n] = 1
            mask[i, :n + 1] = 1
        return ids, mask

    pe = PromptEncoder(lambda: _load(str(d))[0], tokenizer, fp, cache_dir=str(tmp_path))
    a = pe("a b c")
    assert pe.loads == 1 and a.shape == (CFG.text_len, CFG.dim)
    ids, mask = tokenizer(["a b c"])
    with torch.no_grad():
        ref = enc(torch.from_numpy(ids).long(), torch.from_numpy(mask).long())[0].numpy() * mask[0, :, None]
    assert rel_l2(a, ref) <= 1e-5
    pe.release()
    pe2 = PromptEncoder(lambda: (_ for _ in ()).throw(AssertionError("must not load")), tokenizer, fp,
                            cache_dir=str(tmp_path))
    np.testing.assert_array_equal(pe2("a b c"), a)  # warm cache: the encoder is never built
    assert pe2.loads == 0
