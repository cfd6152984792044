"""Prompt-context cache: hit, miss, fingerprint invalidation, corrupt files."""
import os

import ml_dtypes
import numpy as np
import pytest

from gvc_jax.weights import context_cache as cc


class Counter:
    def __init__(self, dtype=np.float32):
        self.calls, self.dtype = [], dtype

    def __call__(self, prompt):
        self.calls.append(prompt)
        g = np.random.default_rng(len(self.calls) + len(prompt))
        return g.normal(size=(8, 4)).astype(self.dtype)


def test_miss_then_hit(tmp_path):
    f = Counter()
    a = cc.get_context("a red car", "fp1", f, cache_dir=str(tmp_path))
    b = cc.get_context("a red car", "fp1", f, cache_dir=str(tmp_path))
    assert f.calls == ["a red car"]
    np.testing.assert_array_equal(a, b)
    assert os.path.isfile(cc.context_path("a red car", "fp1", str(tmp_path)))
    assert not [n for n in os.listdir(os.path.dirname(cc.context_path("x", "fp1", str(tmp_path))))
                if n.startswith(".tmp-")]  # atomic write left no temp file
    cc.get_context("a blue car", "fp1", f, cache_dir=str(tmp_path))  # other prompt: miss
    assert f.calls == ["a red car", "a blue car"]


def test_fingerprint_change_invalidates(tmp_path):
    f = Counter()
    a = cc.get_context("", "fp1", f, cache_dir=str(tmp_path))
    b = cc.get_context("", "fp2", f, cache_dir=str(tmp_path))
    assert f.calls == ["", ""]
    assert not np.array_equal(a, b)
    assert cc.context_path("", "fp1", str(tmp_path)) != cc.context_path("", "fp2", str(tmp_path))


@pytest.mark.parametrize("garbage", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_corrupt_file_is_recomputed(tmp_path, garbage):
    f = Counter()
    path = cc.context_path("p", "fp", str(tmp_path))
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as fh:
        fh.write(garbage)
    a = cc.get_context("p", "fp", f, cache_dir=str(tmp_path))
    assert f.calls == ["p"]
    b = cc.get_context("p", "fp", f, cache_dir=str(tmp_path))  # rewritten, now a hit
    assert f.calls == ["p"]
    np.testing.assert_array_equal(a, b)


def test_mismatched_content_is_recomputed(tmp_path):
    """A file whose stored prompt differs (e.g. copied by hand) is not trusted."""
    f = Counter()
    cc.get_context("p1", "fp", f, cache_dir=str(tmp_path))
    os.replace(cc.context_path("p1", "fp", str(tmp_path)), cc.context_path("p2", "fp", str(tmp_path)))
    cc.get_context("p2", "fp", f, cache_dir=str(tmp_path))
    assert f.calls == ["p1", "p2"]


def test_env_var_and_bfloat16(tmp_path, monkeypatch):
    monkeypatch.setenv("GVC_CACHE_DIR", str(tmp_path / "env"))
    f = Counter(ml_dtypes.bfloat16)
    a = cc.get_context("q", "fpb", f)
    b = cc.get_context("q", "fpb", f)
    assert f.calls == ["q"] and b.dtype == a.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))
    assert str(tmp_path / "env") in cc.context_path("q", "fpb")


def test_bad_fingerprint_rejected(tmp_path):
    with pytest.raises(ValueError):
        cc.context_path("p", "../etc", str(tmp_path))
