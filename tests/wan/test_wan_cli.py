"""Wan T2V through the ``gvc`` command line on tiny random folders, in both layouts.

Round trips are bit-exact against ``--recon``; a stream decoded with other weights is refused
(exit 3, no output); GVCC's index accounting holds (K=16384, M=64, 17 SDE steps, 9 latent
frames: 101,592 bits a GOP); bad folders end in one ``gvc: error:`` line naming the file.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from gvc_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _clip(t, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, -(-h // 8), -(-w // 8), 3)).repeat(8, 1).repeat(8, 2)
    return np.clip(base[:, :h, :w] + rng.integers(-12, 12, (t, h, w, 3)), 0, 255).astype(
        np.uint8)


def _error(err: str) -> str:
    """The error line: exactly one, the last thing on stderr (progress lines may precede it)."""
    lines = err.strip().splitlines()
    assert sum(ln.startswith("gvc: error:") for ln in lines) == 1, err
    assert lines[-1].startswith("gvc: error:") and "Traceback" not in err, err
    return lines[-1]


def _gvc(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gvc_cache"))


def test_official_round_trip_gvcc_accounting(wan_official_folder, wan_official_folder_other,
                                             cache, tmp_path, capsys):
    """GVCC's T2V preset unchanged (K=16384, M=64, 20/17 steps): one 33-frame GOP."""
    src = tmp_path / "src.npy"
    np.save(src, _clip(33, 16, 24))
    rc, out, err = _gvc(capsys, "compress", src, "-o", tmp_path / "a.gvc", "--weights",
                        wan_official_folder, "--cache-dir", cache, "--recon",
                        tmp_path / "recon.npy", "--json")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["config"] == "wan2.1-t2v" and rep["mode"] == "t2v"
    assert rep["codec"]["K"] == 16384 and rep["M"] == 64 and rep["codec"]["shift"] == 3.0
    assert rep["index_bits_per_gop"] == [101_592]
    assert rep["breakdown"]["indices"] == 101_592 // 8 + 4   # GOP prefix of the IDX chunk
    assert rep["bytes_file"] == os.path.getsize(tmp_path / "a.gvc")
    assert rep["bpp"] == pytest.approx(8 * rep["bytes_file"] / (33 * 16 * 24))

    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "dec.npy",
                      "--weights", wan_official_folder, "--cache-dir", cache)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "dec.npy"), np.load(tmp_path / "recon.npy"))

    # Other weights are refused before anything is converted: in seconds, with a fresh cache
    # left empty (the folder's fingerprint comes from a read-only pass).
    fresh = tmp_path / "fresh_cache"
    t0 = time.perf_counter()
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "bad.npy",
                      "--weights", wan_official_folder_other, "--cache-dir", fresh)
    seconds = time.perf_counter() - t0
    assert rc == 3 and "fingerprint mismatch" in _error(err)
    assert not (tmp_path / "bad.npy").exists()
    assert not fresh.exists() or not any(p.is_file() for p in fresh.rglob("*")), \
        sorted(fresh.rglob("*"))
    assert seconds < 20, seconds         # a load would convert and jit three models first


def test_diffusers_round_trip_with_prompt(wan_diffusers_folder, wan_diffusers_folder_other,
                                          cache, tmp_path, capsys):
    src = tmp_path / "src.npy"
    np.save(src, _clip(10, 36, 50, seed=1))      # odd size: padded to 48 x 64, cropped back
    prompt = "a red fox runs across a snowy field"
    rc, out, err = _gvc(capsys, "compress", src, "-o", tmp_path / "a.gvc", "--weights",
                        wan_diffusers_folder, "--cache-dir", cache, "--recon",
                        tmp_path / "recon.npy", "--json", "--K", "512", "--M", "6",
                        "--gop-frames", "5", "--prompt", prompt)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["gops"] == 2 and rep["prompt"] == prompt
    assert rep["breakdown"]["prompt"] == len(prompt)
    rc, out, _ = _gvc(capsys, "info", tmp_path / "a.gvc")
    assert json.loads(out)["prompt"]["text"] == prompt
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "dec.npy",
                      "--weights", wan_diffusers_folder, "--cache-dir", cache)
    assert rc == 0, err
    dec = np.load(tmp_path / "dec.npy")
    assert dec.shape == (10, 36, 50, 3)
    np.testing.assert_array_equal(dec, np.load(tmp_path / "recon.npy"))
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "a.gvc", "-o", tmp_path / "bad.npy",
                      "--weights", wan_diffusers_folder_other, "--cache-dir", cache)
    assert rc == 3 and "fingerprint mismatch" in _error(err)
    assert not (tmp_path / "bad.npy").exists()


def test_named_preset_is_checked_against_the_folder(wan_official_folder, cache, tmp_path,
                                                    capsys):
    np.save(tmp_path / "s.npy", _clip(5, 16, 16))
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "a.gvc",
                      "--config", "wan2.1-t2v-1.3b", "--weights", wan_official_folder,
                      "--cache-dir", cache)
    assert rc == 3 and "not 't2v-1.3b'" in _error(err)
    assert not (tmp_path / "a.gvc").exists()
    rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", tmp_path / "a.gvc",
                      "--config", "wan2.1-t2v")
    assert rc == 2 and "needs --weights" in _error(err)


# ------------------------------------------------------------------ bad folders
class _Evil:
    """Unpickling this would create a marker file (it must never happen)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _broken_folders(base, good):
    """name -> (folder, file the error must name)."""
    out = {}

    def copy(name):
        d = os.path.join(base, name)
        shutil.copytree(good, d)
        return d

    d = copy("missing_vae")
    os.remove(os.path.join(d, "Wan2.1_VAE.pth"))
    out["missing file"] = (d, "Wan2.1_VAE.pth")

    d = copy("truncated_dit")
    f = os.path.join(d, "diffusion_pytorch_model.safetensors")
    with open(f, "r+b") as fh:
        fh.truncate(os.path.getsize(f) // 2)
    out["truncated safetensors"] = (d, "diffusion_pytorch_model.safetensors")

    d = copy("wrong_shape")
    cfg = os.path.join(d, "config.json")
    with open(cfg) as fh:
        c = json.load(fh)
    c["ffn_dim"] = 96
    with open(cfg, "w") as fh:
        json.dump(c, fh)
    out["wrong shape"] = (d, "wrong_shape")

    d = copy("evil_pth")
    marker = os.path.join(base, "pwned")
    with open(os.path.join(d, "models_t5_umt5-xxl-enc-bf16.pth"), "wb") as fh:
        pickle.dump({"weight": _Evil(marker)}, fh)
    out["code-running pickle"] = (d, "models_t5_umt5-xxl-enc-bf16.pth")
    return out, marker


def test_bad_folders_are_one_line_exit_3(wan_official_folder, tmp_path, capsys):
    np.save(tmp_path / "s.npy", _clip(5, 16, 16))
    cases, marker = _broken_folders(str(tmp_path), wan_official_folder)
    for what, (folder, name) in cases.items():
        out = tmp_path / f"{what.replace(' ', '_')}.gvc"
        rc, _, err = _gvc(capsys, "compress", tmp_path / "s.npy", "-o", out, "--weights",
                          folder, "--no-cache", "--K", "64", "--M", "2")
        assert rc == 3, (what, err)
        assert name in _error(err), (what, err)
        assert not out.exists(), what
    assert not os.path.exists(marker), "the pickle ran code"


def test_eval_runs_wan_rows(wan_official_folder, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GVC_CACHE_DIR", cache)
    np.save(tmp_path / "v.npy", _clip(5, 16, 16, seed=3))
    rc, out, err = _gvc(capsys, "eval", tmp_path / "v.npy", "--out", tmp_path / "ev", "--gvc",
                        "wan2.1-t2v:K=256:M=2,4", "--weights", wan_official_folder,
                        "--baselines", "none", "--no-lpips", "--quiet")
    assert rc == 0, err
    with open(tmp_path / "ev" / "results.json") as f:
        rows = json.load(f)["rows"]
    assert [r["setting"] for r in rows] == ["K=256,M=2", "K=256,M=4"]
    assert all(r["codec"] == "gvc-wan2.1-t2v" and r["settings"]["mode"] == "t2v" for r in rows)
    assert rows[1]["bytes"] > rows[0]["bytes"]


# ------------------------------------------------------------------ --shard
def _gvc_on_devices(n: int, *args) -> subprocess.CompletedProcess:
    """``gvc`` in a subprocess that sees ``n`` host CPU devices."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "gvc_jax.cli", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def test_shard_flag_codes_the_same_stream_over_8_devices(wan_official_folder, cache, tmp_path,
                                                         capsys):
    """``--shard wan-fsdp-seq`` over 8 host devices (fp32): the same bytes as the one-device run
    and frames within one level of its; the sharded decoder (its weights parked in host memory)
    gives the sharded encoder's frames;
    the report says the weights were placed over 8 devices; the sharded weights can be parked
    too; a table that cannot split the heads is a one-line usage error."""
    src = tmp_path / "src.npy"
    np.save(src, _clip(5, 16, 24, seed=3))                 # one GOP
    fast = ["--K", "128", "--M", "3", "--steps", "4", "--sde-steps", "3", "--gop-frames", "5"]
    rc, out, err = _gvc(capsys, "compress", src, "-o", tmp_path / "one.gvc", "--weights",
                        wan_official_folder, "--cache-dir", cache, "--recon",
                        tmp_path / "one.npy", "--json", *fast)
    assert rc == 0, err
    assert json.loads(out)["devices"] == 1
    p = _gvc_on_devices(8, "compress", src, "-o", tmp_path / "eight.gvc", "--weights",
                        wan_official_folder, "--cache-dir", cache, "--recon",
                        tmp_path / "eight.npy", "--json", "--shard", "wan-fsdp-seq", *fast)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)["devices"] == 8
    # fp32 sharded sums differ in the last bits: the same choices, frames within one level
    assert (tmp_path / "eight.gvc").read_bytes() == (tmp_path / "one.gvc").read_bytes()
    one, eight = np.load(tmp_path / "one.npy"), np.load(tmp_path / "eight.npy")
    assert np.abs(one.astype(int) - eight.astype(int)).max() <= 1
    p = _gvc_on_devices(8, "decompress", tmp_path / "eight.gvc", "-o", tmp_path / "dec8.npy",
                        "--weights", wan_official_folder, "--cache-dir", cache, "--shard",
                        "wan-fsdp-seq", "--offload", "always")   # sharded weights parked too
    assert p.returncode == 0, p.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "dec8.npy"), eight)
    p = _gvc_on_devices(8, "compress", src, "-o", tmp_path / "bad.gvc", "--weights",
                        wan_official_folder, "--cache-dir", cache, "--shard", "wan-tp", *fast)
    assert p.returncode == 2 and "heads" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "bad.gvc").exists()


def test_text_len_is_a_header_field(wan_official_folder, cache, tmp_path, capsys):
    """--text-len 226 (GVCC's T2V wrapper) pads the prompt context to 226 tokens: it is in the
    header, it changes the stream, and the decoder replays it; 512 streams carry no field."""
    src = tmp_path / "src.npy"
    np.save(src, _clip(5, 16, 16))
    fast = ["--K", "4096", "--M", "16", "--steps", "4", "--sde-steps", "3", "--prompt", "a fox"]
    streams = {}
    for n in (512, 226):
        rc, _, err = _gvc(capsys, "compress", src, "-o", tmp_path / f"{n}.gvc", "--weights",
                          wan_official_folder, "--cache-dir", cache, "--recon",
                          tmp_path / f"{n}.npy", "--text-len", n, *fast)
        assert rc == 0, err
        rc, out, _ = _gvc(capsys, "info", tmp_path / f"{n}.gvc")
        streams[n] = (json.loads(out)["codec"], (tmp_path / f"{n}.gvc").read_bytes())
    assert "text_len" not in streams[512][0] and streams[226][0]["text_len"] == 226
    from gvc_jax.bitstream import container
    idx = {n: [p for t, p in container.read_gvc(b)[1] if t == "IDX "] for n, (_, b) in
           streams.items()}
    assert idx[512] != idx[226]                            # other choices ...
    assert not np.array_equal(np.load(tmp_path / "512.npy"), np.load(tmp_path / "226.npy"))
    rc, _, err = _gvc(capsys, "decompress", tmp_path / "226.gvc", "-o", tmp_path / "d.npy",
                      "--weights", wan_official_folder, "--cache-dir", cache)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "226.npy"))
    rc, _, err = _gvc(capsys, "compress", src, "-o", tmp_path / "g.gvc", "--config", "gaussian",
                      "--text-len", "226")
    assert rc == 2 and "text length" in _error(err)
