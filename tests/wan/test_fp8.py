"""fp8 compute for the Wan DiT (docs/fp8.md): the weight quantisation rule, the fp8 forward
against fp32 on the tiny config, an fp8 stream through the ``gvc`` command line with its cached
quantised weights, and (GPU only) the fp8 GEMMs and encoder/decoder agreement on a Hopper GPU."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx

from configs.wan_dit import get_config
from gvc_jax import cli
from gvc_jax.models.wan import fp8
from gvc_jax.models.wan.dit import WanDiT, make_forward
from gvc_jax.weights import dit as wdit
from gvc_jax.weights.table import abstract_targets, load_into

E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)
FAST = ["--K", "64", "--M", "2", "--steps", "3", "--sde-steps", "2", "--gop-frames", "5"]


def _kernel(seed, shape=(96, 40)):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(shape) * rng.uniform(1e-3, 3.0, shape[-1])).astype(np.float32)
    w[:, 3] = 0.0                                   # an all-zero output channel
    w[5, 7] = 1e-9                                  # a value deep in e4m3's subnormals
    return w


# ------------------------------------------------------------------ (a) quantisation
def test_quantize_kernel_round_trip():
    w = _kernel(0)
    q, s = fp8.quantize_kernel(w)
    assert q.dtype == E4M3 and q.shape == w.shape
    assert s.dtype == np.float32 and s.shape == (w.shape[1],)
    qf = q.astype(np.float32)
    # Each channel's absmax maps to e4m3's largest value, a zero channel to scale 1 and zeros.
    amax = np.abs(w).max(0)
    np.testing.assert_array_equal(s, np.where(amax > 0, amax * np.float32(1 / 448), 1).astype(
        np.float32))
    live = amax > 0
    np.testing.assert_array_equal(np.abs(qf).max(0)[live], 448.0)
    assert s[3] == 1.0 and not qf[:, 3].any()
    # Round to nearest with 3 mantissa bits: a relative error <= 2^-4 in the normal range
    # (|w/s| >= 2^-6), an absolute one <= 2^-10 s (half the subnormal step) below it.
    deq = fp8.dequantize_kernel(q, s)
    err = np.abs(deq - w)
    bound = np.maximum(2.0 ** -4 * np.abs(w), 2.0 ** -10 * s[None, :])
    assert (err <= bound * (1 + 1e-6)).all(), float((err / bound).max())
    rel = np.linalg.norm(deq - w) / np.linalg.norm(w)
    assert 1e-3 < rel < 0.04, rel                   # quantised, and no worse than e4m3 allows


def test_quantize_kernel_is_deterministic_in_numpy_and_jax():
    w = _kernel(1, (64, 48))
    q1, s1 = fp8.quantize_kernel(w)
    q2, s2 = fp8.quantize_kernel(w.copy())
    qj, sj = fp8.quantize_kernel(jnp.asarray(w), jnp)
    for q, s in ((q2, s2), (np.asarray(qj), np.asarray(sj))):
        np.testing.assert_array_equal(q.view(np.uint8), q1.view(np.uint8))
        np.testing.assert_array_equal(s.view(np.uint32), s1.view(np.uint32))
    # bf16 sources quantise from their exact float32 values.
    wb = w.astype(ml_dtypes.bfloat16)
    qb, sb = fp8.quantize_kernel(wb)
    qb2, sb2 = fp8.quantize_kernel(wb.astype(np.float32))
    np.testing.assert_array_equal(qb.view(np.uint8), qb2.view(np.uint8))
    np.testing.assert_array_equal(sb, sb2)


def test_fp8_matmul_is_the_scaled_e4m3_product():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 7, 96)).astype(np.float32) * 3)
    w = _kernel(3)
    q, s = fp8.quantize_kernel(w)
    b = jnp.asarray(rng.standard_normal(40).astype(np.float32))
    y = fp8.fp8_matmul(x, jnp.asarray(q), jnp.asarray(s), b, jnp.float32)
    xq, sx = fp8.quantize_activation(x)
    assert xq.dtype == E4M3 and float(jnp.abs(xq.astype(jnp.float32)).max()) == 448.0
    np.testing.assert_array_equal(np.asarray(sx),
                                  np.abs(np.asarray(x)).max() * np.float32(1 / 448))
    want = (np.asarray(xq).astype(np.float64) @ q.astype(np.float64)) * (float(sx) * s) + b
    np.testing.assert_allclose(np.asarray(y), want, rtol=2e-6, atol=1e-5)
    exact = np.asarray(x, np.float64) @ w + np.asarray(b)
    rel = np.linalg.norm(np.asarray(y) - exact) / np.linalg.norm(exact)
    assert 1e-3 < rel < 0.06, rel


def test_quantize_fp8_covers_the_block_linears_only():
    cfg = get_config("tiny-i2v")
    paths = wdit.fp8_kernels(cfg)
    names = {p.split("/")[1] + "/" + p.split("/")[2] for p in paths}
    assert names == {f"self_attn/{p}" for p in "qkvo"} | {
        f"cross_attn/{p}" for p in ("q", "k", "v", "o", "k_img", "v_img")} | {
        "ffn/fc1", "ffn/fc2"}
    assert all(p.startswith("blocks/") and p.endswith("/kernel") for p in paths)
    arrays = _random_arrays(cfg, 4)
    out = wdit.quantize_fp8(dict(arrays), cfg)
    for p in paths:
        scale = p[:-len("kernel")] + "scale"
        assert out[p].dtype == E4M3 and out[scale].dtype == np.float32
        for layer in range(cfg.num_layers):        # the stacked layers, each its own scales
            q, s = fp8.quantize_kernel(arrays[p][layer])
            np.testing.assert_array_equal(out[p][layer].view(np.uint8), q.view(np.uint8))
            np.testing.assert_array_equal(out[scale][layer], s)
    for p, a in arrays.items():
        if p not in paths:                          # norms, modulation, embeddings, head
            assert out[p] is a or np.array_equal(out[p], a), p
            assert out[p].dtype == np.float32
    assert out["text_embedding/fc1/kernel"].dtype == np.float32
    assert out["head/head/kernel"].dtype == np.float32


def test_load_derived_caches_and_survives_a_full_disk(tmp_path, monkeypatch):
    """The derived entry is keyed by the source fingerprint and the rule, read back without the
    source entry, and a full disk costs only the entry (no partial folder is left)."""
    import errno

    from gvc_jax.weights import cache as wcache

    src = tmp_path / "w.safetensors"
    src.write_bytes(b"x")
    calls = []

    class Conv:
        def run(self, progress=False):
            calls.append("convert")
            return {"k": np.arange(6, dtype=np.float32)}, "a" * 64

    entry = wcache.Entry("fam", [str(src)], "x", str(src), None, Conv)
    double = lambda arrays: {"k2": arrays.pop("k") * 2}  # noqa: E731
    real_save = wcache.save_arrays

    def fail_derived(arrays, folder, meta=None):
        if meta and meta.get("rule"):
            real_save(arrays, folder, meta)
            raise OSError(errno.ENOSPC, "full")
        real_save(arrays, folder, meta)

    cdir = str(tmp_path / "cache")
    monkeypatch.setattr(wcache, "save_arrays", fail_derived)
    out, fp, info = wcache.load_derived(entry, "r1", double, cache_dir=cdir)
    assert fp == "a" * 64 and info["derived_cached"] is False
    np.testing.assert_array_equal(out["k2"], np.arange(6) * 2)
    assert not os.path.exists(os.path.join(cdir, "weights", "fam-r1-" + fp))
    assert not [f for f in os.listdir(os.path.join(cdir, "weights")) if f.startswith(".tmp")]
    monkeypatch.undo()

    out, _, info = wcache.load_derived(entry, "r1", double, cache_dir=cdir)
    assert info["derived_cached"] is True and calls == ["convert"]   # source entry reused
    out, fp2, info = wcache.load_derived(entry, "r1", lambda a: 1 / 0, cache_dir=cdir)
    assert info["source"] == "cache" and fp2 == fp
    np.testing.assert_array_equal(out["k2"], np.arange(6) * 2)
    _, _, info = wcache.load_derived(entry, "r2", double, cache_dir=cdir)  # another rule
    assert info["rule"] == "r2" and info["derived_cached"] is True


# ------------------------------------------------------------------ (b) the DiT forward
def _random_arrays(cfg, seed) -> dict:
    """float32 DiT params drawn on the host: kernels ~ N(0, 1/fan_in), modulation tables
    ~ N(0, 1/dim), norm gains 1 + N(0, 0.1^2), the rest N(0, 0.02^2)."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, (shape, _) in sorted(abstract_targets(wdit.dit_factory(cfg)).items()):
        r = rng.standard_normal(shape)
        if path.endswith("kernel"):
            r = r / np.sqrt(shape[-2])
        elif path.endswith("modulation"):
            r = r / np.sqrt(shape[-1])
        elif path.endswith("scale"):
            r = 1 + 0.1 * r
        else:
            r = 0.02 * r
        out[path] = r.astype(np.float32)
    return out


@pytest.fixture(scope="module")
def tiny_models():
    cfg = get_config("tiny-t2v")
    arrays = _random_arrays(cfg, 3)
    ref = load_into(wdit.dit_factory(cfg, jnp.float32, jnp.float32), arrays)
    bf16 = load_into(wdit.dit_factory(cfg, jnp.bfloat16, jnp.bfloat16), arrays)
    f8 = load_into(wdit.dit_factory(cfg, jnp.bfloat16, jnp.bfloat16, fp8=True),
                   wdit.quantize_fp8(dict(arrays), cfg))
    rng = np.random.default_rng(0)   # host draws: XLA:CPU compiles jax.random.normal slowly
    inputs = (jnp.asarray(rng.standard_normal((1, 16, 3, 8, 12)), jnp.float32),
              jnp.array([700.0]),
              jnp.asarray(rng.standard_normal((1, 512, cfg.text_dim)), jnp.float32))
    return ref, bf16, f8, inputs


def test_fp8_forward_against_fp32(tiny_models):
    ref, bf16, f8, inputs = tiny_models
    forward = make_forward()
    run = lambda m: forward(*nnx.split(m), *inputs)  # noqa: E731
    want = run(ref)
    rel = lambda y: float(jnp.linalg.norm(y - want) / jnp.linalg.norm(want))  # noqa: E731
    got = run(f8)
    # e4m3 rounds each operand to within 2^-4 (rms ~2.6%), ~3.7% per matmul output; the fp32
    # residual stream and the unquantised embeddings, norms and head dilute it (measured
    # 0.021 here). bf16 is ~6x closer, which shows the fp8 path is what ran.
    assert got.dtype == jnp.float32 and got.shape == want.shape
    assert rel(got) < 0.05, rel(got)
    assert rel(got) > 3 * rel(run(bf16)), (rel(got), rel(run(bf16)))
    np.testing.assert_array_equal(np.asarray(run(f8)), np.asarray(got))   # deterministic
    hlo = forward.lower(*nnx.split(f8), *inputs).as_text()
    assert "f8E4M3FN" in hlo and "dot_general" in hlo


# ------------------------------------------------------------------ (c) streams
def _clip(t, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (t, h, w, 3)).astype(np.uint8)


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fp8_stream_round_trip_and_cached_weights(wan_official_folder, tmp_path, capsys,
                                                  monkeypatch):
    cache = tmp_path / "cache"
    np.save(tmp_path / "src.npy", _clip(5, 16, 16))
    args = ["compress", tmp_path / "src.npy", "--weights", wan_official_folder, "--cache-dir",
            cache, "--dtype", "fp8", "--json", *FAST]
    rc, out, err = _gvc(capsys, *args, "-o", tmp_path / "a.gvc", "--recon", tmp_path / "r.npy")
    assert rc == 0, err
    first = json.loads(out)["model_load"]["dit"]
    assert first["rule"] == wdit.FP8_RULE and first.get("derived_cached") is True
    fp_dit = json.loads(out)["model_load"]["parts"]["dit"]
    entry = cache / "weights" / f"wan_dit-{wdit.FP8_RULE}-{fp_dit}"
    assert (entry / "meta.json").is_file()

    rc, out, _ = _gvc(capsys, "info", tmp_path / "a.gvc")
    head = json.loads(out)
    assert head["codec"]["dtype"] == "fp8"

    # The stream's model fingerprint is that of the unquantised weights: the float32 load of
    # the same folder gives the same DiT part.
    _, fp32_fp = wdit.load(wan_official_folder, dtype="float32", cache_dir=str(cache))
    assert fp32_fp == fp_dit

    # A second load reads the quantised entry: quantising again would fail here.
    def refuse(*a, **k):
        raise AssertionError("quantised again")
    monkeypatch.setattr(wdit, "quantize_fp8", refuse)
    rc, out, err = _gvc(capsys, *args, "-o", tmp_path / "b.gvc")
    assert rc == 0, err
    second = json.loads(out)["model_load"]["dit"]
    assert second["source"] == "cache" and second["rule"] == wdit.FP8_RULE
    assert (tmp_path / "a.gvc").read_bytes() == (tmp_path / "b.gvc").read_bytes()

    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "d.npy",
                      "--weights", wan_official_folder, "--cache-dir", cache)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "r.npy"))


def test_fp8_is_refused_for_the_gaussian_prior(tmp_path, capsys):
    np.save(tmp_path / "s.npy", _clip(4, 16, 16))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "a.gvc",
                      "--config", "gaussian", "--dtype", "fp8", "--K", "64", "--M", "2")
    assert rc == 2 and "gvc: error:" in err and "fp8" in err, err
    assert not (tmp_path / "a.gvc").exists()


# ------------------------------------------------------------------ GPU
def _fp8_gemms(hlo: str) -> int:
    """Matrix products of the compiled program that read e4m3 operands: cuBLASLt fp8 calls and
    ``dot``s inside fusions (XLA:GPU gives small GEMMs to Triton fusions; a dot of operands
    converted to bf16 first does not count)."""
    from gvc_jax.fit.hlo_cost import parse
    comps, _ = parse(hlo)
    defs = {n: s for insts in comps.values() for n, s, *_ in insts}
    n = 0
    for insts in comps.values():
        for _, _, op, operands, attrs in insts:
            f8 = [defs.get(x, "").startswith("f8e4m3fn") for x in operands[:2]]
            if len(f8) == 2 and all(f8) and (op == "dot" or (
                    op == "custom-call" and "__cublas$lt$matmul" in attrs)):
                n += 1
    return n


@pytest.mark.gpu
def test_gpu_fp8_gemms_and_bit_exact_decode(wan_official_folder, tmp_path, capsys):
    """On a Hopper GPU: the fp8 forward compiles its linear layers to matrix products of e4m3
    operands (:func:`_fp8_gemms`) and its self-attention to cuDNN's fp8 attention, and an fp8
    stream decodes to the encoder's frames."""
    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")
    if str(jax.devices()[0].compute_capability).split(".")[0] != "9":
        pytest.skip("fp8 GEMMs and attention need a Hopper GPU (sm90)")
    cfg = get_config("tiny-t2v")
    model = WanDiT(cfg, rngs=nnx.Rngs(0), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                   fp8=True)
    rng = np.random.default_rng(0)
    inputs = (jnp.asarray(rng.standard_normal((1, 16, 3, 16, 16)), jnp.float32),
              jnp.array([700.0]),
              jnp.asarray(rng.standard_normal((1, 512, cfg.text_dim)), jnp.float32))
    forward = make_forward()
    hlo = forward.lower(*nnx.split(model), *inputs).compile().as_text()
    assert _fp8_gemms(hlo) > 0, "no fp8 GEMM in the compiled forward"
    f8_calls = [ln for ln in hlo.splitlines() if "custom-call" in ln and "f8e4m3fn" in ln]
    assert any("fmha" in ln.lower() for ln in f8_calls), "no fp8 cuDNN attention"
    y = forward(*nnx.split(model), *inputs)
    assert bool(jnp.isfinite(y).all())

    np.save(tmp_path / "src.npy", _clip(5, 16, 16))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "src.npy", "-o", tmp_path / "a.gvc",
                      "--weights", wan_official_folder, "--cache-dir", tmp_path / "c",
                      "--dtype", "fp8", "--recon", tmp_path / "r.npy", *FAST)
    assert rc == 0, err
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "d.npy",
                      "--weights", wan_official_folder, "--cache-dir", tmp_path / "c")
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "r.npy"))
