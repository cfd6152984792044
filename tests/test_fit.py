"""``gvc_jax.fit``: compiling the codec's programs for a TPU from this CPU machine (docs/fit.md).

The TPU tests need libtpu (``pip install "gvc-jax[tpu]"``; ``make test`` installs it) and are
skipped, with that reason, without it. They compile for compile-only devices of a v5e topology
that libtpu describes; nothing runs on a TPU.
"""
from __future__ import annotations

import importlib.util
import json

import jax
import jax.numpy as jnp
import pytest

from gvc_jax.fit import FitError, fit, format_table, hlo_cost, measure, targets
from gvc_jax.fit.programs import Program

needs_libtpu = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                                  reason='needs libtpu: pip install "gvc-jax[tpu]"')

# The tiny T2V DiT (2 layers, width 64, 16 text tokens), 4 steps of which 3 carry bits,
# K=256 atoms, one GOP of 5 frames at 64x64 (2 latent frames of 8x8).
TINY = dict(config="wan2.1-t2v", size="64x64", frames=5,
            models={"dit": "tiny-t2v-wan22", "vae": "tiny", "t5": "tiny"},
            overrides={"K": 256, "M": 4, "steps": 4, "sde_steps": 3})


@needs_libtpu
def test_tiny_encoder_and_decoder_compile_for_a_v5e_chip():
    """The GOP encoder scan (DiT + codebook search) and decoder scan compile for TPU v5e with
    the splash kernel lowered through Mosaic TPU (a ``tpu_custom_call`` per attention of every
    DiT call, not the interpreter), fit, and carry costs scaled by their loops."""
    r = fit("tpu-v5e-1", programs=("dit_encode", "dit_decode"), **TINY)
    assert r["target"] == "tpu-v5e-1" and r["devices"] == 1 and r["compiled_not_run"]
    assert "v5 lite" in r["device_kind"].lower()
    assert r["latent_shape"] == [16, 2, 8, 8] and r["fits"]
    enc, dec = r["programs"]
    assert (enc["name"], dec["name"]) == ("dit_encode", "dit_decode")
    for e in (enc, dec):
        assert e["fits"] and 0 < e["total_bytes"] <= e["capacity_bytes"] == 15.75 * 2 ** 30
        assert e["kernels"] == ["splash_mha_fwd_segmented_no_residuals"]
        # 2 layers x (self + cross) attention per DiT call, 4 DiT calls per GOP
        assert e["mosaic_custom_calls"] == 2 * 2 * 4
        assert e["flops"] > e["xla_cost_analysis_flops"] > 0    # loops scaled, kernels added
        assert e["estimate_seconds"] > 0
    per = r["per_device_bytes"]
    largest = max(r["programs"], key=lambda e: e["total_bytes"])
    assert r["largest_program"] == largest["name"] and per["total"] == largest["total_bytes"]
    assert r["estimate_seconds_per_gop"] == pytest.approx(
        enc["estimate_seconds"] + dec["estimate_seconds"])
    text = format_table(r)
    assert "dit_encode" in text and "fits" in text and "compiled not run" in text
    json.dumps(r)


def test_without_libtpu_the_error_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "libtpu" else real(name, *a))
    with pytest.raises(FitError, match=r'pip install "gvc-jax\[tpu\]"') as e:
        fit("tpu-v5e-1", programs=("dit_decode",), **TINY)
    assert "\n" not in str(e.value)


def test_bad_requests_are_one_line_errors():
    for kw, match in ((dict(target="tpu-v9"), "unknown fit target"),
                      (dict(config="nope"), "unknown config"),
                      (dict(size="12x"), "WIDTHxHEIGHT"),
                      (dict(config="gaussian"), "compiles Wan models"),
                      (dict(programs=("dit_encode", "x")), "unknown programs")):
        args = dict(target="tpu-v5e-1", **TINY)
        args.update(kw)
        if "programs" not in kw:
            args["programs"] = ("dit_decode",)
        with pytest.raises(FitError, match=match):
            if args["config"] == "gaussian":
                args.pop("models")
            fit(**args)


def test_oom_messages_parse():
    a = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
         "temporaries (19.84G) exceeds available HBM (15.75G).")
    assert measure.parse_oom(a) == {"required_bytes": int(19.84 * 2 ** 30),
                                    "available_bytes": int(15.75 * 2 ** 30),
                                    "what": "temporaries"}
    b = "RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Used 40.5G of 15.75G hbm."
    assert measure.parse_oom(b)["required_bytes"] == int(40.5 * 2 ** 30)
    assert measure.parse_oom("INVALID_ARGUMENT: no") is None


@needs_libtpu
def test_a_program_too_big_is_reported_not_raised():
    dev = targets.devices(targets.get("tpu-v5e-1"))[0]
    x = jax.ShapeDtypeStruct((8,), jnp.float32,
                             sharding=jax.sharding.SingleDeviceSharding(dev))
    big = Program("big", lambda a: jnp.broadcast_to(a, (2 ** 33, 8)) * 2, (x,), (), {},
                  "1 chip", 1, 0)
    e = measure.compile_program(big, targets.get("tpu-v5e-1"), 10)
    assert not e["fits"] and e["required_bytes"] == 2 ** 33 * 8 * 4
    assert e["capacity_bytes"] == int(15.75 * 2 ** 30) and "RESOURCE_EXHAUSTED" in e["error"]


def test_loop_bodies_are_scaled_by_their_trip_counts():
    """XLA's cost analysis counts a scan body once; the HLO reading multiplies it, nested."""
    n = 64

    def f(a):
        def outer(c, _):
            def inner(d, _):
                return jnp.tanh(d @ a), None
            return jax.lax.scan(inner, c, None, length=3)[0], None
        return jax.lax.scan(outer, a, None, length=5)[0]

    sds = jax.ShapeDtypeStruct((n, n), jnp.float32)
    compiled = jax.jit(f).trace(sds).lower().compile()
    got = hlo_cost.analyse(compiled.as_text())
    assert got["flops"] == 15 * 2 * n ** 3 and not got["unknown_loops"]
    assert got["bytes"] >= 15 * 2 * n * n * 4


GPU_HLO = """HloModule gpu_like

%body (p: (s32[], bf16[256,512])) -> (s32[], bf16[256,512]) {
  %p = (s32[], bf16[256,512]{1,0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = bf16[256,512]{1,0} get-tuple-element(%p), index=1
  %w = bf16[512,512]{1,0} constant({...})
  %gemm = (bf16[256,512]{1,0}, s8[4194304]{0}) custom-call(%x, %w), custom_call_target="__cublas$lt$matmul", backend_config={"operation_queue_id":"0","gemm_backend_config":{"alpha_real":1,"dot_dimension_numbers":{"lhs_contracting_dimensions":["1"],"rhs_contracting_dimensions":["0"],"lhs_batch_dimensions":[],"rhs_batch_dimensions":[]},"beta":0}}
  %y = bf16[256,512]{1,0} get-tuple-element(%gemm), index=0
  %q = bf16[1,256,4,128]{3,2,1,0} bitcast(%y)
  %k = bf16[1,64,4,128]{3,2,1,0} constant({...})
  %att = (bf16[1,4,256,128]{3,1,2,0}, u8[256]{0}) custom-call(%q, %k, %k), custom_call_target="__cudnn$fmhaSoftmax", backend_config={"cudnn_fmha_backend_config":{"bmm1_dot_dimension_numbers":{"lhs_batch_dimensions":["0","2"],"rhs_batch_dimensions":["0","2"],"lhs_contracting_dimensions":["3"],"rhs_contracting_dimensions":["3"]},"bmm2_dot_dimension_numbers":{"lhs_batch_dimensions":["0","1"]}}}
  %one = s32[] constant(1)
  %j = s32[] add(%i, %one)
  ROOT %t = (s32[], bf16[256,512]{1,0}) tuple(%j, %y)
}

%cond (c: (s32[], bf16[256,512])) -> pred[] {
  %c = (s32[], bf16[256,512]{1,0}) parameter(0)
  %ci = s32[] get-tuple-element(%c), index=0
  %lim = s32[] constant(100)
  ROOT %lt = pred[] compare(%lim, %ci), direction=GT
}

ENTRY %main (a: bf16[256,512]) -> (s32[], bf16[256,512]) {
  %a = bf16[256,512]{1,0} parameter(0)
  %zero = s32[] constant(0)
  %init = (s32[], bf16[256,512]{1,0}) tuple(%zero, %a)
  ROOT %loop = (s32[], bf16[256,512]{1,0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"7"}}
}
"""


def test_gpu_library_calls_count_their_flops():
    """On GPUs the matrix work is in cuBLAS and cuDNN custom calls: their FLOPs come from
    their dimension numbers, and a loop's trip count from XLA's ``known_trip_count``."""
    got = hlo_cost.analyse(GPU_HLO)
    gemm = 2 * 256 * 512 * 512
    attention = 4 * (1 * 4) * 256 * 64 * 128
    assert got["flops"] == 7 * (gemm + attention) and not got["unknown_loops"]
    assert got["custom_calls"] == {"__cublas$lt$matmul": 7, "__cudnn$fmhaSoftmax": 7}


def test_targets_table():
    assert set(targets.NAMES) >= {"tpu-v5e-1", "tpu-v5e-4", "tpu-v5e-8", "tpu-v6e-1",
                                  "tpu-v6e-8", "tpu-v5p-8", "gpu"}
    v5e = targets.get("tpu-v5e-8")
    assert (v5e.chips, v5e.peak_flops, v5e.hbm_bandwidth) == (8, 197e12, 819e9)
    assert targets.get("tpu-v5p-8").chips == 4        # v5p-8: 8 TensorCores, 4 chips
    if jax.default_backend() != "gpu":
        with pytest.raises(FitError, match="needs a local GPU"):
            targets.get("gpu")


def _gvc(argv, capsys):
    from gvc_jax.cli import main
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@needs_libtpu
def test_gvc_fit_reads_the_architecture_from_a_folder(wan_official_folder, capsys):
    """``gvc fit --weights DIR``: the preset the folder holds, its config files (no weight
    read), compiled for a v5e chip; --json has the keys docs/fit.md promises."""
    rc, out, err = _gvc(["fit", "--target", "tpu-v5e-1", "--weights", wan_official_folder,
                         "--size", "64x64", "--frames", "5", "--programs",
                         "dit_decode,vae_decode", "--json", "--quiet"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert {"target", "devices", "fits", "per_device_bytes", "capacity_bytes", "programs",
            "estimate_seconds_per_gop"} <= set(r)
    assert set(r["per_device_bytes"]) >= {"arguments", "temporaries", "outputs", "total"}
    assert r["target"] == "tpu-v5e-1" and r["devices"] == 1 and r["fits"] is True
    assert [p["name"] for p in r["programs"]] == ["dit_decode", "vae_decode"]
    assert r["config"] == "wan2.1-t2v" and r["compiled_not_run"] is True
    assert r["per_device_bytes"]["total"] == max(p["total_bytes"] + p["resident_bytes"]
                                                 for p in r["programs"])


def test_gvc_fit_bad_requests_are_one_line(capsys, monkeypatch):
    for argv, match in (
            (["fit", "--target", "tpu-v5e-1", "--size", "832x480"], "--config NAME or --weights"),
            (["fit", "--target", "tpu-v9", "--config", "wan2.1-t2v-1.3b", "--size", "64x64"],
             "unknown fit target"),
            (["fit", "--target", "tpu-v5e-1", "--config", "wan2.1-t2v-1.3b", "--size", "64"],
             "WIDTHxHEIGHT"),
            (["fit", "--target", "tpu-v5e-1", "--config", "wan2.1-t2v-1.3b", "--size", "64x64",
              "--mode", "i2v"], "codes t2v, not i2v")):
        rc, out, err = _gvc(argv, capsys)
        assert rc == 2 and err.startswith("gvc: error:") and match in err, (argv, err)
        assert err.count("\n") == 1 and out == ""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "libtpu" else real(name, *a))
    rc, _, err = _gvc(["fit", "--target", "tpu-v5e-1", "--config", "wan2.1-t2v-1.3b",
                       "--size", "832x480"], capsys)
    assert rc == 2 and 'pip install "gvc-jax[tpu]"' in err and err.count("\n") == 1


def test_offload_decides_what_stays_resident():
    """The DiT's weights stay on the chip under the codec's ``auto`` offload unless they take
    over half of it; ``always`` parks them (the fit then says so), ``never`` keeps them."""
    from gvc_jax.fit.api import program_fits, _resident

    cap = 16 * 2 ** 30
    vae = {"total_bytes": 13 * 2 ** 30, "dit_weights_bytes_per_chip": int(3.4 * 2 ** 30)}
    assert _resident(vae, cap, "auto") == vae["dit_weights_bytes_per_chip"]
    assert not program_fits(vae, cap, "auto") and program_fits(vae, cap, "always")
    assert not program_fits(vae, cap, "never")
    big = dict(vae, dit_weights_bytes_per_chip=9 * 2 ** 30)     # over half: auto parks
    assert _resident(big, cap, "auto") == 0 and _resident(big, cap, "never") == 9 * 2 ** 30
    assert not program_fits({"required_bytes": 1}, cap, "always")       # refused by the compiler
    r = {"target": "t", "devices": 8, "device_kind": "TPU v5 lite", "config": "c", "mode": "t2v",
         "size": [1280, 720], "frames": 33, "dtype": "bfloat16", "sharding": "wan-fsdp",
         "capacity_bytes": cap, "fits": False, "fits_with_offload_always": True,
         "largest_program": "vae_decode", "per_device_bytes": {"total": 16 * 2 ** 30},
         "programs": [], "estimate_seconds_per_gop": 1.0, "estimate_seconds_per_gop_decode": 1.0}
    assert "fits with --offload always" in format_table(r)
