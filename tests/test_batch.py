"""``gvc batch`` (docs/batch.md): batched scans equal the per-GOP ones, 8-device data parallel
and a two-process jax.distributed split give the single-process bytes, the streams are
byte-identical to ``gvc compress``, a SIGKILLed job resumes without redoing a finished GOP,
Ctrl-C leaves no partial output, and bad inputs get the CLI's exit codes."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from gvc_jax.codec.codings import topm
from gvc_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny and fast: 4-frame GOPs (one latent frame), K=256, 3 SDE steps of 4.
FAST = ["--config", "gaussian-fast", "--K", "256", "--M", "2", "--steps", "4", "--sde-steps",
        "3", "--gop-frames", "4"]
N_GOPS = 16


from tests.test_interrupt import default_sigint  # noqa: E402

def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XLA_FLAGS", "JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS"))}
    return dict(env, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)


def _cmd(*args):
    return [sys.executable, "-m", "gvc_jax", "batch", *map(str, args)]


def batch(*args, **env):
    return subprocess.run(_cmd(*args), capture_output=True, text=True, env=_env(**env), cwd=ROOT,
                          timeout=600)


def gvc_files(out) -> dict:
    return {n: (out / n).read_bytes() for n in sorted(os.listdir(out)) if n.endswith(".gvc")}


def gop_files(out) -> dict:
    job = out / ".gvc-job"
    found = {}
    for d in sorted(os.listdir(job)) if job.exists() else []:
        for n in os.listdir(job / d):
            if n.startswith("gop-") and n.endswith(".idx"):
                st = os.stat(job / d / n)
                found[f"{d}/{n}"] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def temps(out) -> list:
    return [os.path.join(r, n) for r, _, ns in os.walk(out) for n in ns if ".tmp" in n]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips, 16 GOPs: 6 + 6 (the last of 2 frames, padded) at 32x32, 4 at 24x40."""
    d = tmp_path_factory.mktemp("batch_in")
    rng = np.random.default_rng(0)
    for name, shape in (("a", (24, 32, 32, 3)), ("b", (22, 32, 32, 3)), ("c", (16, 24, 40, 3))):
        np.save(d / f"{name}.npy", rng.integers(0, 256, shape, dtype=np.uint8))
    return d


@pytest.fixture(scope="module")
def clean(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch_clean") / "out"
    r = batch(clips, "-o", out, *FAST, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["videos_total"] == 3 and rep["gops_total"] == rep["gops_coded"] == N_GOPS
    assert sorted(gvc_files(out)) == ["a.gvc", "b.gvc", "c.gvc"]
    return out, rep


def test_batched_scans_equal_per_gop():
    import jax

    from gvc_jax import codebook
    from gvc_jax.codec.api import params_for
    from gvc_jax.codec.codec_model import load_model
    from gvc_jax.sampler import decode_gop, encode_gop
    from gvc_jax.sampler.batched import decode_gops, encode_gops

    _, _, p = params_for("gaussian-fast", dict(K=64, M=3, steps=4, sde_steps=3, gop_frames=8))
    m = load_model("gaussian", params=p)
    rng = np.random.default_rng(1)
    x0 = np.stack([np.asarray(m.encode(rng.integers(0, 256, (8, 16, 24, 3), dtype=np.uint8)))
                   for _ in range(3)])
    gops = np.array([0, 5, 2])
    x_T = np.stack([np.asarray(codebook.init_noise(p.seed, int(g), x0.shape[1:])) for g in gops])
    spec = topm.spec(p, topm.m_per_frame(p, x0.shape[2]))
    idx, sign, xe = encode_gops(m.graphdef, m.state, m.cond, x_T, x0, p.seed, gops, spec=spec)
    xd = decode_gops(m.graphdef, m.state, m.cond, x_T, idx, sign, p.seed, gops, spec=spec)
    assert idx.shape == (3, 3, 2, 3)
    for b, g in enumerate(gops):
        i1, s1, x1 = encode_gop(m.graphdef, m.state, m.cond, x_T[b], x0[b], p.seed, int(g),
                                spec=spec)
        d1 = decode_gop(m.graphdef, m.state, m.cond, x_T[b], i1, s1, p.seed, int(g), spec=spec)
        np.testing.assert_array_equal(idx[b], i1)
        np.testing.assert_array_equal(sign[b], s1)
        np.testing.assert_allclose(xe[b], x1, rtol=0, atol=1e-6)
        np.testing.assert_allclose(xd[b], d1, rtol=0, atol=1e-6)
        np.testing.assert_allclose(xd[b], xe[b], rtol=0, atol=1e-6)
    assert len(jax.local_devices()) >= 1


_EIGHT = """
import json, sys
import numpy as np, jax
from gvc_jax import codebook, cli
from gvc_jax.codec.api import params_for
from gvc_jax.codec.codec_model import load_model
from gvc_jax.codec.codings import topm
from gvc_jax.sampler import batched
devs = jax.local_devices()
assert len(devs) == 8 and batched.mesh().size == 8, devs
_, _, p = params_for("gaussian-fast", dict(K=64, M=2, steps=3, sde_steps=2, gop_frames=4))
m = load_model("gaussian", params=p)
rng = np.random.default_rng(2)
x0 = np.stack([np.asarray(m.encode(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)))
               for _ in range(5)])
g = np.arange(5) * 3
x_T = np.stack([np.asarray(codebook.init_noise(p.seed, int(i), x0.shape[1:])) for i in g])
spec = topm.spec(p, topm.m_per_frame(p, 1))
one = batched.encode_gops(m.graphdef, m.state, m.cond, x_T, x0, p.seed, g, spec=spec,
                          devices=devs[:1])
eight = batched.encode_gops(m.graphdef, m.state, m.cond, x_T, x0, p.seed, g, spec=spec)
for a, b in zip(one, eight):
    assert a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))
# The conditioning travels sharded with its GOPs (cuDNN attention needs q, k, v sharded alike).
_, _, cb, nb = batched._place([x_T], m.state, {"context": np.ones((3, 4), np.float32)}, None)
assert nb == 5 and cb["context"].shape == (8, 3, 4)
assert cb["context"].sharding.spec == jax.sharding.PartitionSpec("data"), cb["context"].sharding
sys.exit(cli.main(["batch", *sys.argv[1:]]))
"""


def test_data_parallel_on_8_devices_equals_one_device(clips, clean, tmp_path):
    out, rep = clean
    r = subprocess.run([sys.executable, "-c", _EIGHT, str(clips), "-o", str(tmp_path / "o8"),
                        *FAST, "--verify", "--json", "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
    assert r.returncode == 0, r.stderr
    rep8 = json.loads(r.stdout)
    assert rep8["devices"] == 8 and rep8["batch_gops"] == 8 and rep8["gops_coded"] == N_GOPS
    assert rep8["batches"] == 3           # 32x32: 8 + 4 (padded to 8); 24x40: 4 (padded)
    assert all(v["verified"] and v["psnr"] > 5 for v in rep8["videos"])
    assert gvc_files(tmp_path / "o8") == gvc_files(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_the_videos(clips, clean, tmp_path):
    out, _ = clean
    port = _free_port()
    procs = [subprocess.Popen(_cmd(clips, "-o", tmp_path / "od", *FAST, "--json", "--quiet",
                                   "--distributed", "--process-id", i),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                       JAX_NUM_PROCESSES="2"))
             for i in range(2)]
    res = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in res]
    reps = [json.loads(o) for o, _ in res]
    assert [(r["process_index"], r["process_count"]) for r in reps] == [(0, 2), (1, 2)]
    shares = [{os.path.basename(v["output"]) for v in r["videos"]} for r in reps]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert shares[0] | shares[1] == {"a.gvc", "b.gvc", "c.gvc"}
    assert sum(r["gops_coded"] for r in reps) == N_GOPS
    assert gvc_files(tmp_path / "od") == gvc_files(out)


def test_streams_are_byte_identical_to_gvc_compress(clips, clean, tmp_path, capsys):
    out, _ = clean
    for name in ("a", "b", "c"):
        rc = cli.main(["compress", str(clips / f"{name}.npy"), "-o", str(tmp_path / "x.gvc"),
                       *FAST, "--quiet"])
        assert rc == 0, capsys.readouterr().err
        assert (tmp_path / "x.gvc").read_bytes() == (out / f"{name}.gvc").read_bytes(), name


def _start_and_wait(clips, out, min_gops):
    """A --batch-gops 1 job, running until ``min_gops`` GOP files exist."""
    p = subprocess.Popen(_cmd(clips, "-o", out, *FAST, "--batch-gops", "1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(), cwd=ROOT, preexec_fn=default_sigint)
    deadline = time.time() + 300
    while len(gop_files(out)) < min_gops:
        assert p.poll() is None, "the job ended before it could be stopped: " + \
            p.stderr.read()
        assert time.time() < deadline
        time.sleep(0.005)
    return p


def test_sigkilled_job_resumes_without_redoing_a_gop(clips, clean, tmp_path, capsys):
    out_clean, _ = clean
    out = tmp_path / "out"
    p = _start_and_wait(clips, out, 8)                 # a.npy done, b.npy under way
    p.kill()
    p.wait(timeout=30)
    before = gop_files(out)
    assert 8 <= len(before) < N_GOPS
    partial = gvc_files(out)
    per_video = {"a": 6, "b": 6, "c": 4}
    for name, n in per_video.items():                  # a .gvc only once all its GOPs exist
        done = sum(k.startswith(name + "-") for k in before) == n
        assert (f"{name}.gvc" in partial) == done, (name, sorted(before))
    assert "a.gvc" in partial and len(partial) < 3
    for n, data in partial.items():                     # ... and it is complete
        assert data == (out_clean / n).read_bytes()

    r = batch(clips, "-o", out, *FAST, "--batch-gops", "1", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["gops_total"] == N_GOPS
    assert rep["gops_coded"] == N_GOPS - len(before)   # no finished GOP recomputed
    for v in rep["videos"]:
        name = os.path.basename(v["output"])
        found = sum(k.startswith(name[:-4] + "-") for k in before)
        if name in partial:
            assert v["status"] == "skipped" and v["gops_coded"] == v["gops_reused"] == 0
        else:
            assert v["status"] == "coded" and v["gops_reused"] == found
            assert v["gops_coded"] == per_video[name[:-4]] - found
    assert "finished earlier, skipped" in r.stderr and "batch " in r.stderr
    after = gop_files(out)
    assert len(after) == N_GOPS
    assert {k: after[k] for k in before} == before     # same inode, mtime and size: untouched
    assert gvc_files(out) == gvc_files(out_clean)
    assert temps(out) == []

    # a third run has nothing to do
    rc = cli.main(["batch", str(clips), "-o", str(out), *FAST, "--json", "--quiet"])
    rep3 = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep3["videos_skipped"] == 3 and rep3["gops_coded"] == 0
    assert gop_files(out) == after and gvc_files(out) == gvc_files(out_clean)


def test_ctrl_c_exits_130_at_once_without_partial_output(clips, clean, tmp_path):
    out_clean, _ = clean
    out = tmp_path / "out"
    p = _start_and_wait(clips, out, 2)
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    elapsed = time.perf_counter() - t0
    err = p.stderr.read()
    assert rc == 130 and "interrupted" in err, err
    assert elapsed < 1.5, f"took {elapsed:.2f} s to stop"
    for n, data in gvc_files(out).items():
        assert data == (out_clean / n).read_bytes()
    assert temps(out) == []


def _err(capsys, *args):
    rc = cli.main(["batch", *map(str, args)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("gvc: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return rc, lines[0]


def test_bad_inputs_exit_codes(clips, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    (tmp_path / "empty").mkdir()
    (tmp_path / "dup").mkdir()
    np.save(tmp_path / "dup" / "a.npy", np.zeros((4, 8, 8, 3), np.uint8))
    (tmp_path / "file").write_text("x")
    cases = [
        ((tmp_path / "missing.npy", "-o", out), 3, "no such file"),
        ((tmp_path / "empty", "-o", out), 3, "no videos"),
        ((tmp_path / "junk.mp4", "-o", out, *FAST), 3, "junk.mp4"),
        ((clips, "-o", out, "--batch-gops", "0"), 2, "--batch-gops must be >= 1"),
        ((clips, "-o", out, "--config", "nope"), 2, "unknown config"),
        ((clips, "-o", tmp_path / "file"), 2, "expected an output folder"),
        ((clips, "-o", tmp_path / "no" / "out"), 2, "does not exist"),
        ((clips, tmp_path / "dup", "-o", out), 2, "would both be written to a.gvc"),
    ]
    for args, code, needle in cases:
        rc, line = _err(capsys, *args)
        assert rc == code and needle in line, (args, rc, line)
    from gvc_jax import batch as batch_mod
    real = batch_mod.api.params_for
    monkeypatch.setattr(batch_mod.api, "params_for",
                        lambda *a, **k: (real(*a, **k)[0], "i2v", real(*a, **k)[2]))
    rc, line = _err(capsys, clips, "-o", out)
    assert rc == 2 and "GOPs are independent" in line
    assert not os.path.exists(out) or gvc_files(out) == {}
    # jax.distributed needs a fresh process: no coordinator is a usage error
    r = batch(clips, "-o", out, "--distributed")
    assert r.returncode == 2 and r.stderr.startswith("gvc: error: --distributed:"), r.stderr
    assert r.stderr.count("\n") == 1
