"""The read-only model fingerprint of a Wan folder (gvc_jax.weights.wan.fingerprint): equal to the
one load() returns, for both layouts and the image models; another seed gives another one;
nothing is written to the cache; and each family's read-only pass equals its conversion."""
from __future__ import annotations

import os
import time

import pytest


pytest.importorskip("torch")

from gvc_jax.weights import cache, clip, dit, t5, vae, wan  # noqa: E402
from gvc_jax.weights import folder as wf  # noqa: E402
from gvc_jax.weights import table  # noqa: E402
from gvc_jax.weights.sources import CheckpointError  # noqa: E402


def _files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def _loaded(root, kind, cache_dir):
    return wan.load(root, cache_dir=cache_dir, kind=kind)


@pytest.mark.parametrize("name,kind", [("wan_official_folder", "t2v"),
                                       ("wan_diffusers_folder", "t2v"),
                                       ("wan_i2v_official", "i2v"),
                                       ("wan_flf2v_diffusers", "flf2v")])
def test_fingerprint_equals_load_and_writes_nothing(name, kind, request, tmp_path):
    root = request.getfixturevalue(name)
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    parts: dict = {}
    t0 = time.perf_counter()
    fp = wan.fingerprint(root, cache_dir=str(empty), parts=parts)
    seconds = time.perf_counter() - t0
    assert _files(empty) == []                     # nothing converted, nothing cached
    got = _loaded(root, kind, str(tmp_path / "cache"))
    assert fp == got.fingerprint and parts == got.parts
    assert set(parts) == {"dit", "vae", "umt5", "tokenizer"} | ({"clip"} if kind != "t2v"
                                                                  else set())
    # with the components cached, the index answers (no read of the weights at all)
    warm = wan.fingerprint(root, cache_dir=str(tmp_path / "cache"))
    assert warm == fp
    print(f"{name}: fingerprint() on a cold cache {seconds:.2f} s")


def test_a_warm_cache_is_read_not_the_weights(wan_official_folder, tmp_path, monkeypatch):
    fp = _loaded(wan_official_folder, "t2v", str(tmp_path)).fingerprint

    def refuse(*a, **k):
        raise AssertionError("the cached components must come from the index")

    monkeypatch.setattr(table, "fingerprint_stream", refuse)
    assert wan.fingerprint(wan_official_folder, cache_dir=str(tmp_path)) == fp
    with pytest.raises(AssertionError, match="from the index"):   # cache_dir=False: no index
        wan.fingerprint(wan_official_folder, cache_dir=False)


def test_another_seed_differs_in_every_part(wan_official_folder, wan_official_folder_other,
                                            tmp_path):
    a, b = {}, {}
    fa = wan.fingerprint(wan_official_folder, cache_dir=str(tmp_path), parts=a)
    fb = wan.fingerprint(wan_official_folder_other, cache_dir=str(tmp_path), parts=b)
    assert fa != fb
    assert all(a[k] != b[k] for k in ("dit", "vae", "umt5"))
    assert _files(tmp_path) == []


@pytest.mark.parametrize("layout", ["official", "diffusers"])
@pytest.mark.parametrize("dtype", [None, "float32", "bfloat16"])
def test_read_only_pass_equals_the_conversion(layout, dtype, wan_official_folder,
                                              wan_diffusers_folder):
    """Per family, dtype and layout: Conversion.fingerprint() == Conversion.run()[1] (the VAE
    casts after the table; the official umT5 is bf16, the rest fp32)."""
    root = wan_official_folder if layout == "official" else wan_diffusers_folder
    cfg, dit_layout, where = wf.dit_config(root)
    v_src, v_layout = wf.vae_source(root)
    t_src, t_layout = wf.t5_source(root)
    convs = [dit.conversion(dit.read(where, dit_layout), cfg, dtype=dtype),
             vae.conversion(vae.read(v_src, v_layout), wf.vae_config(v_src, v_layout),
                            dtype=dtype),
             t5.conversion(t5.read(t_src, t_layout), wf.t5_config(t_src, t_layout),
                           dtype=dtype)]
    for conv in convs:
        arrays, fp = conv.run()
        assert conv.fingerprint() == fp, conv.name
        want = conv.source_dtype if dtype is None else table.np_dtype(dtype)
        assert {a.dtype for a in arrays.values() if table.is_float(a.dtype)} <= {
            want, table.np_dtype("float32")}  # the DiT keeps some fp32 params at any dtype


def test_clip_read_only_pass_equals_the_conversion(wan_i2v_official):
    src, layout = wf.clip_source(wan_i2v_official)
    conv = clip.conversion(clip.read(src, layout), wf.clip_config(src, layout))
    assert conv.fingerprint() == conv.run()[1]
    entry = clip.cache_entry(wan_i2v_official)
    assert cache.fingerprint(entry, cache_dir=False) == clip.load(wan_i2v_official,
                                                                  cache_dir=False)[1]


def test_bad_weights_are_refused_before_reading_data(wan_official_folder, tmp_path):
    """A table error (here: the DiT read as the wrong architecture) is raised from the shapes,
    labelled with the checkpoint, and leaves the cache empty."""
    from configs.wan_dit import get_config

    entry = dit.cache_entry(wan_official_folder)
    entry.conversion = lambda: dit.conversion(dit.read(entry.label), get_config("tiny-i2v"))
    with pytest.raises(table.ConversionError, match=entry.label):
        cache.fingerprint(entry, cache_dir=str(tmp_path))
    assert _files(tmp_path) == []


def test_architecture_check(wan_official_folder):
    assert wan.architecture(wan_official_folder, kind="t2v").name == "tiny-t2v"
    with pytest.raises(CheckpointError, match="not i2v"):
        wan.architecture(wan_official_folder, kind="i2v")
    with pytest.raises(CheckpointError, match="not 't2v-1.3b'"):
        wan.architecture(wan_official_folder, expect="t2v-1.3b")
