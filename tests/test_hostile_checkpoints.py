"""Checkpoint readers under attack (issue 14, part 2).

Broken copies of the tiny random Wan folders go through ``gvc compress --weights FOLDER``; each ends
with exit 3, exactly one ``gvc: error:`` line naming the file, and no output file. Pickles that
would run code do not run it (a marker file is never created).
"""
from __future__ import annotations

import collections
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from gvc_jax import cli

DIT = "diffusion_pytorch_model.safetensors"
VAE = "Wan2.1_VAE.pth"
T5 = "models_t5_umt5-xxl-enc-bf16.pth"


# ------------------------------------------------------------------ file surgery
def _read_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[:8], "little")
    return json.loads(b[8:8 + n]), b[8 + n:]


def _write_st(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + data)


def _edit_st(path, fn):
    header, data = _read_st(path)
    fn(header)
    _write_st(path, header, data)


class _Evil:
    """Unpickling this would create the marker file; it must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2 over a storage, with any size/stride."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        import torch._utils

        return (torch._utils._rebuild_tensor_v2, self.args)


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            import torch

            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def _torch_zip(path, state: dict, blobs: dict):
    """A PyTorch-style zip checkpoint written by hand (so its tensors can lie about shapes)."""
    import io

    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for k, v in blobs.items():
            z.writestr(f"archive/data/{k}", v)
        z.writestr("archive/version", "3\n")


# ------------------------------------------------------------------ cases
def _cases(base, official, marker):
    """name -> (folder, text the error line must contain)."""
    out = {}

    def copy(name, src=official):
        d = os.path.join(base, name)
        shutil.copytree(src, d, symlinks=True)
        return d

    # pickles that would execute code: old-style and zip .pth, VAE and text encoder
    d = copy("evil_legacy")
    with open(os.path.join(d, VAE), "wb") as f:
        pickle.dump({"w": _Evil(marker)}, f)
    out["code-running pickle (old-style)"] = (d, VAE)
    d = copy("evil_zip")
    import torch
    torch.save({"w": _Evil(marker)}, os.path.join(d, T5))
    out["code-running pickle (zip)"] = (d, T5)
    # a .pth tensor whose shape/stride reach past its storage (would read foreign memory)
    d = copy("pth_view_out_of_storage")
    _torch_zip(os.path.join(d, VAE), {"encoder.conv1.weight": _Tensor(_Storage("0", 4), 0,
                                                                      (8, 3, 3, 3, 3),
                                                                      (81, 27, 9, 3, 1)),
                                      "conv2.weight": _Tensor(_Storage("0", 4), 0, (4,), (1,))},
               {"0": np.zeros(4, "<f4").tobytes()})
    out["pth tensor larger than its storage"] = (d, VAE)
    # safetensors headers
    d = copy("st_truncated_header")
    with open(os.path.join(d, DIT), "wb") as f:
        f.write(b"\x10\x00\x00")
    out["truncated safetensors header length"] = (d, DIT)
    d = copy("st_truncated_json")
    with open(os.path.join(official, DIT), "rb") as f:
        head = f.read(40)
    with open(os.path.join(d, DIT), "wb") as f:
        f.write(head)
    out["truncated safetensors header JSON"] = (d, DIT)
    d = copy("st_oversized_header")
    with open(os.path.join(d, DIT), "wb") as f:
        f.write((2**62).to_bytes(8, "little") + b"{}")
    out["oversized safetensors header length"] = (d, DIT)
    d = copy("st_header_past_eof")
    with open(os.path.join(d, DIT), "wb") as f:
        f.write((50 * 2**20).to_bytes(8, "little") + b"{}")
    out["safetensors header length past the end of the file"] = (d, DIT)
    d = copy("st_not_object")
    _write_st(os.path.join(d, DIT), [1, 2], b"")
    out["safetensors header not an object"] = (d, DIT)
    # dtypes and shapes
    d = copy("st_f8")
    _edit_st(os.path.join(d, DIT), lambda h: h["patch_embedding.weight"].update(dtype="F8_E4M3"))
    out["dtype F8_E4M3"] = (d, DIT)
    d = copy("st_shape_vs_bytes")
    _edit_st(os.path.join(d, DIT), lambda h: h["patch_embedding.weight"].update(
        shape=[2 * s for s in h["patch_embedding.weight"]["shape"]]))
    out["shape larger than its bytes"] = (d, DIT)
    d = copy("st_bad_offsets")
    _edit_st(os.path.join(d, DIT), lambda h: h["patch_embedding.weight"].update(
        data_offsets=[10, 2]))
    out["reversed data_offsets"] = (d, DIT)
    d = copy("st_transposed")
    _edit_st(os.path.join(d, DIT), lambda h: h["blocks.0.ffn.0.weight"].update(
        shape=h["blocks.0.ffn.0.weight"]["shape"][::-1]))
    out["transposed weight shape"] = (d, "blocks.0.ffn.0.weight")
    # symlink loops in place of files the loader needs
    d = copy("loop_dit")
    os.remove(os.path.join(d, DIT))
    os.symlink(DIT, os.path.join(d, DIT))
    out["symlink loop (DiT weights)"] = (d, DIT)
    d = copy("loop_vae")
    os.remove(os.path.join(d, VAE))
    os.symlink("other.pth", os.path.join(d, VAE))
    os.symlink(VAE, os.path.join(d, "other.pth"))
    out["symlink loop (VAE)"] = (d, VAE)
    # sharded folders
    d = copy("shard_missing")
    t = d
    s1, s2 = (f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2))
    os.rename(os.path.join(t, DIT), os.path.join(t, s1))
    keys = [k for k in _read_st(os.path.join(t, s1))[0] if k != "__metadata__"]
    with open(os.path.join(t, DIT + ".index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {k: (s1, s2)[i % 2] for i, k in
                                                  enumerate(keys)}}, f)
    out["index names a missing shard"] = (d, s2)
    for name, body in (("index_bad_json", "{not json"),
                       ("index_no_weight_map", json.dumps([1])),
                       ("index_path_traversal", json.dumps({"weight_map": {"a": "../" + DIT}}))):
        d = copy(name)
        t = d
        os.rename(os.path.join(t, DIT), os.path.join(t, "diffusion_pytorch_model-00001-of-00001"
                                                        ".safetensors"))
        with open(os.path.join(t, DIT + ".index.json"), "w") as f:
            f.write(body)
        out[name.replace("_", " ")] = (d, DIT + ".index.json")
    return out


def _run(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_hostile_folders_end_in_one_line_exit_3(wan_official_folder, tmp_path, capsys):
    src = tmp_path / "s.npy"
    np.save(src, np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    marker = str(tmp_path / "pwned")
    cases = _cases(str(tmp_path), wan_official_folder, marker)
    failures = []
    for what, (folder, name) in cases.items():
        out = tmp_path / f"{what.replace(' ', '_')}.gvc"
        rc, _, err = _run(capsys, "compress", src, "-o", out, "--weights", folder, "--no-cache",
                          "--K", "64", "--M", "2", "--quiet")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        ok = (rc == 3 and len(lines) == 1 and lines[0].startswith("gvc: error:")
              and name in lines[0] and "Traceback" not in err and not out.exists())
        if not ok:
            failures.append((what, rc, err[-500:], out.exists()))
    assert not failures, failures
    assert not os.path.exists(marker), "a pickle ran code"


@pytest.mark.slow  # a full conversion and encode (~45 s on 2 CPU cores)
def test_int_tensor_where_floats_are_expected(wan_official_folder, tmp_path, capsys):
    d = tmp_path / "st_int"
    shutil.copytree(wan_official_folder, d)
    _edit_st(str(d / DIT), lambda h: h["patch_embedding.weight"].update(dtype="I32"))
    src = tmp_path / "s.npy"
    np.save(src, np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    rc, _, err = _run(capsys, "compress", src, "-o", tmp_path / "a.gvc", "--weights", d,
                      "--no-cache", "--K", "64", "--M", "2", "--quiet")
    assert rc == 3 and "st_int" in err and "'patch_embedding.weight': stored as int32" in err
