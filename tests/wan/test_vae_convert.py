"""Wan VAE converter: full-size table coverage (both layouts, no allocation), error cases,
layout detection, the CLI round trip and the registry entry."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from configs.wan_vae import get_config  # noqa: E402
from gvc_jax.weights import vae as cv  # noqa: E402
from gvc_jax.weights.table import ConversionError, abstract_targets, check_coverage  # noqa: E402


def _convert(path, layout="auto", config="tiny"):
    """``(arrays, fingerprint)`` of a checkpoint, float32 (the VAE's parameter dtype)."""
    return cv.conversion(cv.read(path, layout), get_config(config), dtype="float32").run()


def _meta_shapes(module):
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


@pytest.fixture(scope="module")
def full_targets():
    return abstract_targets(cv.vae_factory(get_config("wan2.1")))


def _official_meta(dim):
    from gvc_jax.testing.wan22 import load_wan22
    mod = load_wan22("vae2_1")
    with torch.device("meta"):  # same arguments as the official _video_vae for Wan2.1_VAE.pth
        return mod.WanVAE_(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)


def _diffusers_meta(dim):
    from diffusers import AutoencoderKLWan
    with torch.device("meta"):
        return AutoencoderKLWan(base_dim=dim)


def test_full_size_official_coverage(full_targets):
    check_coverage(_meta_shapes(_official_meta(96)), cv.official_rules(get_config("wan2.1")),
                   full_targets)


def test_full_size_diffusers_coverage(full_targets):
    check_coverage(_meta_shapes(_diffusers_meta(96)), cv.diffusers_rules(), full_targets)


def test_full_size_param_count(full_targets):
    n = sum(int(np.prod(s)) for s, _ in full_targets.values())
    assert n == sum(int(np.prod(s)) for _, s in _meta_shapes(_diffusers_meta(96)))


def test_errors(full_targets):
    keys = _meta_shapes(_diffusers_meta(96))
    rules = cv.diffusers_rules()
    with pytest.raises(ConversionError, match="match no rule"):
        check_coverage(keys + [("decoder.extra.weight", (3,))], rules, full_targets)
    with pytest.raises(ConversionError, match="not in the checkpoint"):
        check_coverage([kv for kv in keys if "decoder.up_blocks.2.resnets.1.conv2.bias" not in kv[0]],
                       rules, full_targets)
    bad = [(k, (s[0] + 1,) + s[1:]) if k == "encoder.conv_in.weight" else (k, s) for k, s in keys]
    with pytest.raises(ConversionError, match="shape"):
        check_coverage(bad, rules, full_targets)
    # the tiny checkpoint does not fit the full config
    with pytest.raises(ConversionError):
        check_coverage(_meta_shapes(_diffusers_meta(8)), rules, full_targets)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from diffusers import AutoencoderKLWan

    from gvc_jax.testing.wan22 import load_wan22
    d = tmp_path_factory.mktemp("vae_cv")
    torch.manual_seed(0)
    dif = AutoencoderKLWan(base_dim=8)
    dif.save_pretrained(d / "repo" / "vae")
    off = load_wan22("vae2_1").WanVAE_(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                       attn_scales=[], temperal_downsample=[False, True, True])
    torch.save(off.state_dict(), d / "Wan2.1_VAE.pth")
    return d


def test_layouts_and_cli_roundtrip(tiny_files, capsys):
    d = tiny_files
    assert cv.detect_layout(str(d / "Wan2.1_VAE.pth")) == "official"
    assert cv.detect_layout(str(d / "repo" / "vae")) == "diffusers"
    arrays, fp = _convert(str(d / "repo"))  # repo root -> vae/
    arrays2, fp2 = _convert(str(d / "repo" / "vae"), layout="diffusers")
    assert fp == fp2
    from convert_weights.vae import cli_convert
    assert cli_convert([str(d / "repo" / "vae"), str(d / "out.safetensors"), "--config", "tiny"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fingerprint"] == fp and rep["layout"] == "diffusers"
    assert cv.detect_layout(str(d / "out.safetensors")) == "converted"
    arrays3, fp3 = _convert(str(d / "out.safetensors"))
    assert fp3 == fp
    _, fp_off = _convert(str(d / "Wan2.1_VAE.pth"))
    assert fp_off != fp  # different random weights, different fingerprint
    # diffusers gamma [C,1,1,1] -> [C]; torch conv [O,I,T,H,W] -> [T,H,W,I,O]
    sd = torch.load(d / "Wan2.1_VAE.pth")
    a_off, _ = _convert(str(d / "Wan2.1_VAE.pth"))
    np.testing.assert_array_equal(a_off["decoder/up/1/resample/time_conv/kernel"],
                                  sd["decoder.upsamples.7.time_conv.weight"].numpy().transpose(2, 3, 4, 1, 0))
    np.testing.assert_array_equal(a_off["encoder/mid_attn/qkv_kernel"],
                                  sd["encoder.middle.1.to_qkv.weight"].numpy()[:, :, 0, 0].T)


def test_pickled_code_refused(tmp_path):
    import pickle
    import zipfile

    from gvc_jax.weights.sources import CheckpointError
    p = tmp_path / "evil.pth"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(print))
    with pytest.raises(CheckpointError):
        _convert(str(p))


def test_registered_in_cli():
    from convert_weights.cli import COMMANDS
    assert COMMANDS.get("vae") == ("convert_weights.vae", "cli_convert")
