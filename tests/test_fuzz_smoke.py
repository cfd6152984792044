"""Short runs of the fuzz harnesses (issue 14) in the default test run.

The long run is ``bench/fuzz_gvc.py`` (bench/results/fuzz.json). Here: the committed corpus is
accepted or rejected cleanly, a few thousand deterministic mutations of it go through the same
harness, and, where atheris is installed, a short coverage-guided run of each harness.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.testing.fuzz import gvc_harness, safetensors_harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SEEDS = ("gaussian_1gop.gvc", "gaussian_2gop.gvc", "gaussian_odd.gvc", "wan_t2v_prompt.gvc",
         "wan_t2v_cfg.gvc")


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and b:                                   # flip bits
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:                                 # random byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2 and b:                                 # truncate
            del b[rng.randrange(len(b)):]
        elif op == 3:                                       # insert bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4 and len(b) > 4:                        # interesting 32-bit value
            i = rng.randrange(len(b) - 3)
            v = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 2**30, 2**20 + 1, 10**9])
            b[i:i + 4] = v.to_bytes(4, "big")
        elif op == 5 and b:                                 # digits in the JSON header
            i = rng.randrange(len(b))
            b[i:i + 1] = rng.choice([b"9", b"99999", b"-1", b"1e9", b"0", b"[]", b"{}", b'"'])
    return bytes(b)


def test_corpus_is_accepted_or_cleanly_rejected():
    files = gvc_harness.corpus_files(CORPUS)
    names = {os.path.basename(f) for f in files}
    assert set(SEEDS) <= names
    assert sum(os.path.getsize(f) for f in files) < 200_000
    outcome = {}
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        try:
            outcome[os.path.basename(f)] = gvc_harness.check(data)
        except BitstreamError:
            outcome[os.path.basename(f)] = "rejected"
        gvc_harness.TestOneInput(data)  # the CRC-repaired variant too
    assert all(outcome[s] == "ok" for s in SEEDS), outcome   # real streams of every mode parse


def test_gvc_mutation_smoke():
    rng = random.Random(14)
    seeds = []
    for f in gvc_harness.corpus_files(CORPUS):
        with open(f, "rb") as fh:
            seeds.append(fh.read())
    for _ in range(1500):
        gvc_harness.TestOneInput(_mutate(rng, rng.choice(seeds)))  # raises on a crash


def test_safetensors_mutation_smoke():
    rng = random.Random(15)
    seeds = safetensors_harness.seeds()
    assert [safetensors_harness.check(s) for s in seeds] == ["safetensors", "index"]
    for _ in range(1500):
        safetensors_harness.TestOneInput(_mutate(rng, rng.choice(seeds)))


def _atheris():
    try:
        import atheris  # noqa: F401
    except ImportError:
        pytest.skip("atheris is not installed (pip install -e .[test])")


def test_atheris_smoke_gvc(tmp_path):
    _atheris()
    out = tmp_path / "fuzz.json"
    r = subprocess.run([sys.executable, "bench/fuzz_gvc.py", "--inputs", "2000", "--timeout", "10",
                        "--out", str(out), "--work", str(tmp_path / "work")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["inputs"] == 2000 and res["crashes"] == 0 and res["hangs"] == 0
    assert res["coverage"]["edges"] > 100


def test_atheris_smoke_safetensors(tmp_path):
    _atheris()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, s in enumerate(safetensors_harness.seeds()):
        (corpus / f"seed{i}").write_bytes(s)
    # libFuzzer's RSS limit reads ru_maxrss, which a child starts with at its parent's resident
    # size on Linux (the high-water mark survives fork and exec): a long pytest process can
    # already hold GBs, so the limit is 2 GB above what the harness inherits.
    import resource
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    r = subprocess.run([sys.executable, "-m", "gvc_jax.testing.fuzz.safetensors_harness", "-runs=2000",
                        "-timeout=10", "-seed=1", f"-rss_limit_mb={inherited_mb + 2048}",
                        f"-artifact_prefix={tmp_path}/", str(corpus)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Done 2000 runs" in r.stderr
