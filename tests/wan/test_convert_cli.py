"""``gvc-convert`` on tiny random Wan folders (both layouts): the architecture comes from the
folder's own config files, presets are checked against it, the checkpoint's dtype is kept
unless ``--dtype`` is given, the CLI's output equals the direct conversion exactly (and a DiT
forward of it matches the PyTorch source at fp32 tolerance), and every failure is one
``gvc-convert: error:`` line with exit 2 (usage) or 3 (bad checkpoint)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from configs.wan_vae import get_config as get_vae_config
from convert_weights.cli import main
from gvc_jax.weights import folder as wf
from gvc_jax.weights.cache import load_arrays

torch = pytest.importorskip("torch")
BF16 = np.dtype(ml_dtypes.bfloat16)


def _convert(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _ok(capsys, *args) -> dict:
    rc, out, err = _convert(capsys, *args)
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gvc-convert: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _read(out) -> dict:
    out = str(out)
    if out.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return load_file(out)
    return load_arrays(out)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------ DiT
@pytest.mark.parametrize("layout", ["official", "diffusers"])
def test_dit_round_trip_from_the_folders_own_config(layout, wan_official_folder,
                                                    wan_diffusers_folder, tmp_path, capsys):
    from gvc_jax.weights import dit

    folder = wan_official_folder if layout == "official" else wan_diffusers_folder
    rep = _ok(capsys, "dit", folder, tmp_path / "out")        # no --config
    cfg, own_layout, where = wf.dit_config(folder)
    assert own_layout == layout and rep["layout"] == layout
    assert rep["config"] == cfg.name == "tiny-t2v"
    assert rep["dtype"] == rep["source_dtype"] == "float32"    # the folders are fp32
    direct, fp = dit.conversion(dit.read(where, layout), cfg, dtype=jnp.float32).run()
    back = _read(tmp_path / "out")
    _assert_same(back, direct)
    assert rep["fingerprint"] == fp
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["fingerprint"] == fp and meta["dtype"] == "float32"
    # the same fingerprint as the family loader (which keeps the checkpoint's dtype too)
    assert dit.load(folder, cache_dir=False)[1] == fp
    # a matching preset is accepted and changes nothing
    rep2 = _ok(capsys, "dit", folder, tmp_path / "out2", "--config", "tiny-t2v")
    assert rep2["fingerprint"] == fp


def _torch_dit(folder):
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file

    sub = os.path.join(folder, "transformer")
    m = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(sub))
    m.load_state_dict(load_file(os.path.join(sub, "diffusion_pytorch_model.safetensors")),
                      strict=True)
    return m.eval()


def test_dit_forward_parity_through_the_cli(wan_diffusers_folder, tmp_path, capsys):
    """The fp32 CLI output runs within fp32 tolerance of the PyTorch source; bf16 storage
    (what the converter silently did before) is visibly worse."""
    from gvc_jax.weights import dit
    from gvc_jax.weights.dit import load, load_dit_orbax
    from gvc_jax.testing.refs import rel_l2

    _ok(capsys, "dit", wan_diffusers_folder, tmp_path / "f32")
    rep = _ok(capsys, "dit", wan_diffusers_folder, tmp_path / "bf16", "--dtype", "bfloat16")
    assert rep["dtype"] == "bfloat16" and rep["source_dtype"] == "float32"
    cfg, layout, where = wf.dit_config(wan_diffusers_folder)
    back16 = _read(tmp_path / "bf16")
    # bf16 wherever the model stores bf16 (it keeps its time embedding, norms and modulation
    # in fp32 at any parameter dtype), equal to the direct conversion
    _assert_same(back16, dit.conversion(dit.read(where, layout), cfg,
                                        dtype=jnp.bfloat16).run()[0])
    for k in ("blocks/self_attn/q/kernel", "blocks/ffn/fc1/kernel", "patch_embedding/kernel"):
        assert back16[k].dtype == BF16, k

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 3, 4, 6)).astype(np.float32)
    t = np.array([437.25], np.float32)
    ctx = np.zeros((1, cfg.text_len, cfg.text_dim), np.float32)
    ctx[:, :7] = rng.standard_normal((1, 7, cfg.text_dim))
    with torch.no_grad():
        want = _torch_dit(wan_diffusers_folder)(
            hidden_states=torch.from_numpy(x), timestep=torch.from_numpy(t),
            encoder_hidden_states=torch.from_numpy(ctx), return_dict=False)[0].numpy()

    def run(model):
        return np.asarray(model(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx)))

    f32 = dict(dtype=jnp.float32, param_dtype=jnp.float32)
    got = run(load_dit_orbax(str(tmp_path / "f32"), cfg, **f32))
    # bit-identical to the Python loader, and at fp32 tolerance of the source
    np.testing.assert_array_equal(got, run(load(wan_diffusers_folder, cache_dir=False)[0]))
    assert rel_l2(got, want) <= 5e-6 and np.abs(got - want).max() <= 5e-5  # measured 1.6e-6
    got16 = run(load_dit_orbax(str(tmp_path / "bf16"), cfg, **f32))
    assert rel_l2(got16, want) > 1e-4


def test_dit_bare_file_needs_a_preset(wan_official_folder, tmp_path, capsys):
    f = os.path.join(wan_official_folder, "diffusion_pytorch_model.safetensors")
    os.makedirs(tmp_path / "bare")
    os.symlink(f, tmp_path / "bare" / "w.safetensors")
    rc, _, err = _convert(capsys, "dit", tmp_path / "bare" / "w.safetensors", tmp_path / "o")
    assert rc == 3 and "--config" in _one_line_error(err)
    rep = _ok(capsys, "dit", tmp_path / "bare" / "w.safetensors", tmp_path / "o",
              "--config", "tiny-t2v")
    assert rep["layout"] == "official" and rep["config"] == "tiny-t2v"


# ------------------------------------------------------------------ VAE, umT5
def test_vae_both_layouts_read_their_own_config(wan_official_folder, wan_diffusers_folder,
                                                tmp_path, capsys):
    from gvc_jax.weights import vae

    a = _ok(capsys, "vae", wan_official_folder, tmp_path / "a.safetensors")
    b = _ok(capsys, "vae", wan_diffusers_folder, tmp_path / "b.safetensors")
    assert a["config"] == b["config"] == "tiny" and a["dtype"] == "float32"
    assert (a["layout"], b["layout"]) == ("official", "diffusers")
    # one seed, same weights in both layouts: the same arrays and fingerprint
    _assert_same(_read(tmp_path / "a.safetensors"), _read(tmp_path / "b.safetensors"))
    assert a["fingerprint"] == b["fingerprint"] == vae.load(wan_official_folder,
                                                            cache_dir=False)[1]
    direct, fp = vae.conversion(vae.read(os.path.join(wan_official_folder, wf.VAE_FILE)),
                                get_vae_config("tiny"), dtype="float32").run()
    _assert_same(_read(tmp_path / "a.safetensors"), direct)
    c = _ok(capsys, "vae", wan_official_folder, tmp_path / "c.safetensors", "--dtype",
            "bfloat16")
    assert c["dtype"] == "bfloat16"
    back = _read(tmp_path / "c.safetensors")
    assert {v.dtype for v in back.values()} == {BF16}
    _assert_same(back, {k: v.astype(BF16) for k, v in direct.items()})
    # a converted file converts again to the same model
    d = _ok(capsys, "vae", tmp_path / "b.safetensors", tmp_path / "d.safetensors")
    assert d["layout"] == "converted" and d["fingerprint"] == fp


def test_t5_keeps_the_checkpoints_dtype(wan_official_folder, wan_diffusers_folder, tmp_path,
                                        capsys):
    """The official umT5 file is bf16, the diffusers one fp32 holding the same (bf16) values."""
    from gvc_jax.weights import t5

    off = _ok(capsys, "t5", wan_official_folder, tmp_path / "off")
    assert off["dtype"] == off["source_dtype"] == "bfloat16" and off["layout"] == "official"
    assert {v.dtype for v in _read(tmp_path / "off").values()} == {BF16}
    assert off["fingerprint"] == t5.load(wan_official_folder, cache_dir=False)[1]
    dif = _ok(capsys, "t5", wan_diffusers_folder, tmp_path / "dif.safetensors")
    assert dif["dtype"] == "float32" and dif["layout"] == "diffusers"
    assert dif["config"] == off["config"]
    # widened / narrowed on request, the two layouts agree exactly
    dif16 = _ok(capsys, "t5", wan_diffusers_folder, tmp_path / "dif16", "--dtype", "bfloat16")
    assert dif16["fingerprint"] == off["fingerprint"]
    _assert_same(_read(tmp_path / "dif16"), _read(tmp_path / "off"))
    off32 = _ok(capsys, "t5", wan_official_folder, tmp_path / "off32", "--dtype", "float32")
    assert off32["fingerprint"] == dif["fingerprint"]
    # the preset of the same size is accepted and names it
    rep = _ok(capsys, "t5", wan_official_folder, tmp_path / "tiny", "--config", "tiny")
    assert rep["config"] == "tiny"
    _assert_same(_read(tmp_path / "tiny"), _read(tmp_path / "off"))


def test_clip_default_preset(tmp_path, capsys):
    """CLIP has no folder reader: the preset (default vit-h-14) names the architecture, and a
    checkpoint of another size is a bad checkpoint, not a traceback."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from configs.wan_clip import get_config

    c = get_config("tiny")
    torch.manual_seed(0)
    m = CLIPVisionModel(CLIPVisionConfig(hidden_size=c.dim, intermediate_size=c.mlp,
                                         num_hidden_layers=c.layers, num_attention_heads=c.heads,
                                         image_size=c.image_size, patch_size=c.patch,
                                         hidden_act="gelu", layer_norm_eps=c.eps))
    m.save_pretrained(tmp_path / "repo" / "image_encoder")
    capsys.readouterr()  # transformers' own progress output
    rc, _, err = _convert(capsys, "clip", tmp_path / "repo", tmp_path / "o")
    assert rc == 3 and "shape" in _one_line_error(err)
    assert not (tmp_path / "o").exists()
    rep = _ok(capsys, "clip", tmp_path / "repo", tmp_path / "o", "--config", "tiny")
    assert rep["config"] == "tiny" and rep["dtype"] == "float32"
    rep = _ok(capsys, "clip", tmp_path / "repo", tmp_path / "o16.safetensors", "--config",
              "tiny", "--dtype", "bfloat16")
    assert {v.dtype for v in _read(tmp_path / "o16.safetensors").values()} == {BF16}


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("family,preset", [("dit", "t2v-1.3b"), ("vae", "wan2.1"),
                                           ("t5", "umt5-xxl")])
def test_preset_mismatch_is_one_line_exit_3(family, preset, wan_official_folder, tmp_path,
                                            capsys):
    out = tmp_path / ("o.safetensors" if family == "vae" else "o")
    rc, _, err = _convert(capsys, family, wan_official_folder, out, "--config", preset)
    line = _one_line_error(err)
    assert rc == 3 and f"--config {preset} does not match" in line
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("args,needle", [
    (["dit", "SRC", "OUT", "--config", "nope"], "unknown Wan DiT config 'nope'"),
    (["vae", "SRC", "OUT.safetensors", "--config", "nope"], "nope"),
    (["t5", "SRC", "OUT", "--config", "nope"], "nope"),
    (["clip", "SRC", "OUT", "--config", "nope"], "nope"),
    (["dit", "SRC", "OUT", "--bogus"], "unrecognized arguments: --bogus"),
    (["dit", "SRC"], "required: out"),
    (["t5", "SRC", "OUT", "--dtype", "float16"], "invalid choice"),
    (["vae", "SRC", "OUT", "--layout", "sideways"], "invalid choice"),
    (["vae", "SRC", "OUT.npz"], "must be a .safetensors file"),
    (["nope", "SRC", "OUT"], "unknown model family 'nope'"),
    ([], "name a model family"),
])
def test_usage_errors_are_one_line_exit_2(args, needle, wan_official_folder, tmp_path, capsys):
    args = [wan_official_folder if a == "SRC" else str(tmp_path / a) if a.startswith("OUT")
            else a for a in args]
    rc, out, err = _convert(capsys, *args)
    assert rc == 2 and needle in _one_line_error(err) and out == ""
    assert os.listdir(tmp_path) == []


def test_output_that_is_not_ours_is_refused(wan_official_folder, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    rc, _, err = _convert(capsys, "t5", wan_official_folder, tmp_path / "busy")
    assert rc == 2 and "not a gvc-convert output" in _one_line_error(err)
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]
    # an earlier converter output is replaced
    _ok(capsys, "t5", wan_official_folder, tmp_path / "again")
    _ok(capsys, "t5", wan_official_folder, tmp_path / "again", "--dtype", "float32")
    assert json.loads((tmp_path / "again" / "meta.json").read_text())["dtype"] == "float32"


def _bad_sources(root, official):
    """(name, path) of broken checkpoints, each a copy of part of the official folder."""
    import shutil

    out = {}
    d = root / "truncated"
    d.mkdir()
    shutil.copy(os.path.join(official, "config.json"), d)
    data = open(os.path.join(official, "diffusion_pytorch_model.safetensors"), "rb").read()
    (d / "diffusion_pytorch_model.safetensors").write_bytes(data[: len(data) // 2])
    out["truncated"] = d
    d = root / "badjson"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    out["badjson"] = d
    d = root / "wrongclass"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    out["wrongclass"] = d
    d = root / "extra"
    d.mkdir()
    shutil.copy(os.path.join(official, "config.json"), d)
    from safetensors.numpy import load_file, save_file
    sd = load_file(os.path.join(official, "diffusion_pytorch_model.safetensors"))
    sd["blocks.0.self_attn.extra.weight"] = np.zeros(3, np.float32)
    save_file(sd, str(d / "diffusion_pytorch_model.safetensors"))
    out["extra"] = d
    (root / "text.txt").write_text("not a checkpoint\n")
    out["text"] = root / "text.txt"
    out["missing"] = root / "missing"
    return out


@pytest.mark.parametrize("family", ["dit", "vae", "t5"])
def test_bad_checkpoints_are_one_line_exit_3(family, wan_official_folder, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    srcs = _bad_sources(tmp_path / "src", wan_official_folder)
    (tmp_path / "out").mkdir()
    for name, src in srcs.items():
        out = tmp_path / "out" / ("o.safetensors" if family == "vae" else "o")
        rc, stdout, err = _convert(capsys, family, src, out)
        line = _one_line_error(err)
        assert rc == 3, (family, name, err)
        assert str(src) in line or os.path.basename(str(src)) in line, (family, name, line)
        assert stdout == "" and os.listdir(tmp_path / "out") == [], (family, name)


def test_real_entry_point_prints_one_line(wan_official_folder, tmp_path):
    """Through a fresh interpreter: nothing but the error line on stderr (no warnings or
    traceback from the libraries), for a usage error and a bad checkpoint; -h exits 0."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "convert_weights.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=300,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

    r = run("dit", wan_official_folder, tmp_path / "o", "--config", "t2v-1.3b")
    assert r.returncode == 3 and "does not match" in _one_line_error(r.stderr)
    r = run("dit", wan_official_folder, tmp_path / "o", "--nope")
    assert r.returncode == 2 and "unrecognized arguments" in _one_line_error(r.stderr)
    r = run("dit", "-h")
    assert r.returncode == 0 and "--dtype" in r.stdout and r.stderr == ""
