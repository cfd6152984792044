"""Writes a Wan 2.1 T2V, I2V or FLF2V checkpoint folder (the official layout) with random weights,
full size.

    python bench/write_random_wan.py OUT --dit t2v-14b [--seed 0] [--t5 umt5-xxl|tiny]
        [--vae wan2.1|tiny] [--tokenizer-from DIR] [--dit-dtype bf16|fp32] [--device auto|cpu|cuda]

OUT receives what a user downloads from ``Wan-AI/Wan2.1-T2V-*``::

    config.json                               WanModel's own config (save_config of the module)
    diffusion_pytorch_model.safetensors       DiT; over --max-shard-gb (10 GB) it is sharded as
      or diffusion_pytorch_model-0000k-of-0000N.safetensors + ...safetensors.index.json
    Wan2.1_VAE.pth                            torch.save'd WanVAE_ state_dict, fp32
    models_t5_umt5-xxl-enc-bf16.pth           torch.save'd T5Encoder state_dict, bf16
    google/umt5-xxl/                          tokenizer (a small one trained on the fly, or a copy)
    models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth   I2V/FLF2V: the whole XLM-RoBERTa
                                              CLIP (both towers), fp16

The I2V/FLF2V DiT is the T2V skeleton with 36 input channels plus the image branch
(``img_emb.proj.*``, each block's ``cross_attn.{k,v}_img`` and ``norm_k_img``, and FLF2V's
``img_emb.emb_pos``), since the official ``wan22`` module has no Wan 2.1 image branch.

Parameter names and shapes come from the official modules (PyPI ``wan22``) built on the
``meta`` device, so nothing is allocated for the model itself. Each tensor is filled in chunks
(at most 64M elements) with random values of a sane scale, generated on the GPU when there is
one, and streamed to disk by a writer thread:

* safetensors are written directly (header first, then the bytes tensor by tensor);
* ``.pth`` files are laid out by ``torch.save`` itself under ``torch.serialization.skip_data``
  (a header-only archive with holes for the storages), then the holes are filled in place and
  the zip CRC-32 fields patched, so the file is what ``torch.save`` would have written and
  reads back with ``torch.load`` and with plain ``zipfile`` readers.

Peak host memory is a few chunks (~1 GB), whatever the model size.

Differences from the real downloads: the 14B DiT is written in bf16 by default (the real files are
fp32, 6 shards, ~57 GB; ``--dit-dtype fp32`` writes that); the tokenizer vocabulary is tiny
unless ``--tokenizer-from`` points at a real ``google/umt5-xxl`` folder (the T5 embedding table
keeps its real 256384 rows either way). Values are deterministic for a given seed and device type
(CPU and CUDA generators give different streams).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import queue
import shutil
import struct
import sys
import threading
import time
import zipfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DIT_CHOICES = ("t2v-1.3b", "t2v-14b", "tiny-t2v", "i2v-14b-720p", "flf2v-14b-720p", "tiny-flf2v")
T5_CHOICES = ("umt5-xxl", "tiny")
VAE_CHOICES = ("wan2.1", "tiny")
VAE_BASE_DIM = {"wan2.1": 96, "tiny": 8}

DIT_FILE = "diffusion_pytorch_model.safetensors"
DIT_INDEX = DIT_FILE + ".index.json"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
TOKENIZER_SUBDIR = os.path.join("google", "umt5-xxl")

CHUNK_ELEMS = 1 << 26  # elements generated per step (256 MB of fp32 on the device)
_PARTS = {"dit": 1, "vae": 2, "t5": 3, "clip": 4}
_T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - _T0:8.1f}s] {msg}", flush=True)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


# ------------------------------------------------------------------ skeletons (meta device)
def dit_skeleton(name: str):
    """The official WanModel of ``configs.wan_dit`` config ``name``, on the meta device."""
    import torch

    from configs.wan_dit import get_config
    from tests.wan.test_dit_refs import wan22_kwargs
    from tests.wan22_loader import load_wan22

    cfg = get_config(name)
    mod = load_wan22("model")
    kw = wan22_kwargs(cfg.copy_and_resolve_references() if cfg.model_type == "t2v" else
                      _as_t2v(cfg))
    with torch.device("meta"):
        return mod.WanModel(**kw)


def _as_t2v(cfg):
    c = cfg.copy_and_resolve_references()
    c.model_type = "t2v"
    return c


def image_entries(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The Wan 2.1 image branch of an i2v/flf2v DiT (official names), appended to the blocks."""
    from configs.wan_dit import get_config

    cfg = get_config(name)
    if cfg.model_type == "t2v":
        return []
    d, c = cfg.dim, cfg.clip_dim
    out = []
    for i in range(cfg.num_layers):
        p = f"blocks.{i}.cross_attn."
        out += [(p + "k_img.weight", (d, d)), (p + "k_img.bias", (d,)),
                (p + "v_img.weight", (d, d)), (p + "v_img.bias", (d,)),
                (p + "norm_k_img.weight", (d,))]
    out += [("img_emb.proj.0.weight", (c,)), ("img_emb.proj.0.bias", (c,)),
            ("img_emb.proj.1.weight", (c, c)), ("img_emb.proj.1.bias", (c,)),
            ("img_emb.proj.3.weight", (d, c)), ("img_emb.proj.3.bias", (d,)),
            ("img_emb.proj.4.weight", (d,)), ("img_emb.proj.4.bias", (d,))]
    if cfg.model_type == "flf2v":
        out.append(("img_emb.emb_pos", (1, 2 * cfg.clip_len, c)))
    return out


def clip_skeleton():
    import torch

    from tests.wan22_loader import load_wan22

    mod = load_wan22("animate.clip")
    with torch.device("meta"):
        return mod.XLMRobertaCLIP(image_size=224, patch_size=14, vision_dim=1280,
                                  vision_mlp_ratio=4, vision_heads=16, vision_layers=32,
                                  vision_pool="token", activation="gelu")


def vae_skeleton(name: str):
    import torch

    from tests.wan22_loader import load_wan22

    mod = load_wan22("vae2_1")
    with torch.device("meta"):
        return mod.WanVAE_(dim=VAE_BASE_DIM[name], z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)


def t5_skeleton(name: str):
    import torch

    from configs.wan_text import get_config
    from tests.wan22_loader import load_wan22

    c = get_config(name)
    mod = load_wan22("t5")
    with torch.device("meta"):
        return mod.T5Encoder(vocab=c.vocab, dim=c.dim, dim_attn=c.dim_attn, dim_ffn=c.ffn,
                             num_heads=c.heads, num_layers=c.layers, num_buckets=c.buckets,
                             shared_pos=False, dropout=0.0)


def entries_of(module) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, shape)`` of every state_dict tensor, in state_dict order."""
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


# ------------------------------------------------------------------ random values
def value_stats(part: str, name: str, shape) -> tuple[float, float]:
    """(mean, std) of the random fill of one tensor.

    Matrices and convolutions: std 1/sqrt(fan_in) (unit-variance outputs); DiT modulation
    tables: 1/sqrt(dim); norm gains: 1 +- 0.1; biases and other vectors: 0.02; T5 embedding
    tables (tokens, relative positions): 1. The VAE decoder's last conv is scaled by 0.3 so
    decoded pixels mostly stay inside the [-1, 1] clamp.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "gamma" or ("norm" in name and leaf == "weight"):
        return 1.0, 0.1
    if "modulation" in name:
        return 0.0, 1.0 / math.sqrt(shape[-1])
    if leaf == "bias" or len(shape) < 2:
        return 0.0, 0.02
    if part == "t5" and "embedding" in name:
        return 0.0, 1.0
    std = 1.0 / math.sqrt(math.prod(shape[1:]))
    if part == "vae" and name == "decoder.head.2.weight":
        std *= 0.3
    return 0.0, std


class Filler:
    """Random chunks of one component, drawn from one generator in a fixed order."""

    def __init__(self, part: str, seed: int, device: str):
        import torch

        self.part, self.device = part, device
        self.gen = torch.Generator(device=device).manual_seed(1000 * seed + _PARTS[part])

    def chunks(self, name: str, shape, dtype):
        """Yields contiguous CPU uint8 views (numpy) covering the tensor row-block by row-block."""
        import torch

        mean, std = value_stats(self.part, name, shape)
        shape = tuple(shape) or (1,)
        row = math.prod(shape[1:])
        step = max(1, CHUNK_ELEMS // max(row, 1))
        for r0 in range(0, shape[0], step):
            rows = min(step, shape[0] - r0)
            x = torch.randn((rows, *shape[1:]), generator=self.gen, device=self.device,
                            dtype=torch.float32)
            x.mul_(std)
            if mean:
                x.add_(mean)
            x = x.to(dtype).cpu().contiguous()
            yield x.reshape(-1).view(torch.uint8).numpy()


# ------------------------------------------------------------------ writer thread
class Sink:
    """Writes ``(offset, bytes)`` items on a background thread (file I/O and CRC-32 release the
    GIL, so generation and copies overlap with the writes). ``crc`` tags accumulate CRC-32s."""

    def __init__(self, path: str, mode: str):
        self.f = open(path, mode)
        self.q: queue.Queue = queue.Queue(maxsize=4)
        self.crcs: dict = {}
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            try:
                offset, arr, tag = item
                if offset is not None:
                    self.f.seek(offset)
                self.f.write(memoryview(arr))
                if tag is not None:
                    self.crcs[tag] = zlib.crc32(arr, self.crcs.get(tag, 0))
            except BaseException as e:  # surfaced by put()/close()
                self.error = e

    def put(self, arr, offset: int | None = None, tag=None):
        if self.error is not None:
            raise self.error
        self.q.put((offset, arr, tag))

    def close(self, fsync: bool = False):
        self.q.put(None)
        self.t.join()
        if self.error is None and fsync:
            self.f.flush()
            os.fsync(self.f.fileno())
        self.f.close()
        if self.error is not None:
            raise self.error


# ------------------------------------------------------------------ safetensors
_ST_DTYPE = {"bfloat16": "BF16", "float32": "F32", "float16": "F16"}


def _nbytes(shape, dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def write_safetensors(path: str, entries, dtype, filler: Filler, fsync: bool = False) -> int:
    """Streams ``entries`` (name, shape) into one safetensors file; returns the bytes written."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in entries:
        n = _nbytes(shape, dtype)
        header[name] = {"dtype": _ST_DTYPE[str(dtype).replace("torch.", "")],
                        "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    sink = Sink(path, "wb")
    try:
        sink.put(memoryview(struct.pack("<Q", len(raw)) + raw))
        for name, shape in entries:
            for arr in filler.chunks(name, shape, dtype):
                sink.put(arr)
    finally:
        sink.close(fsync)
    return 8 + len(raw) + off


def shard_plan(entries, dtype, max_bytes: int) -> list[list]:
    """Greedy split in state_dict order into shards of at most ``max_bytes`` (a tensor larger
    than that gets a shard of its own)."""
    shards, cur, size = [], [], 0
    for name, shape in entries:
        n = _nbytes(shape, dtype)
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    if cur:
        shards.append(cur)
    return shards


def write_dit(root: str, entries, dtype, filler: Filler, max_bytes: int, fsync: bool = False) -> int:
    """``diffusion_pytorch_model.safetensors``, or HF-style shards plus their index."""
    shards = shard_plan(entries, dtype, max_bytes)
    if len(shards) == 1:
        t = time.time()
        n = write_safetensors(os.path.join(root, DIT_FILE), entries, dtype, filler, fsync)
        log(f"dit: {DIT_FILE} {_gb(n)} in {time.time() - t:.1f} s")
        return n
    total, weight_map = 0, {}
    for i, shard in enumerate(shards):
        fname = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        t = time.time()
        n = write_safetensors(os.path.join(root, fname), shard, dtype, filler, fsync)
        log(f"dit: {fname} {_gb(n)} in {time.time() - t:.1f} s")
        weight_map.update({name: fname for name, _ in shard})
        total += sum(_nbytes(s, dtype) for _, s in shard)
    with open(os.path.join(root, DIT_INDEX), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return total


# ------------------------------------------------------------------ torch .pth
class _StorageKeys(pickle.Unpickler):
    """Reads a torch.save'd flat state_dict pickle into {name: (storage key, offset, numel)}
    without importing anything (only the few globals torch writes are recognised)."""

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: (storage, offset, math.prod(size))
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        return pid[2]  # ('storage', type, key, location, numel)


def _layout_pth(path: str, entries, dtype) -> None:
    """``torch.save`` of the state_dict's structure, storages left as holes."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = {name: torch.empty(shape, dtype=dtype) for name, shape in entries}
    with torch.serialization.skip_data(materialize_fake_tensors=True):
        torch.save(fake, path)


def _records(path: str) -> tuple[dict, dict]:
    """{storage key: (data offset, size)} and {record name: central-directory offset}."""
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        infos = {zi.filename: zi for zi in zf.infolist()}
        prefix = next(n for n in infos if n.endswith("/data.pkl"))[:-len("data.pkl")]
        keys = _StorageKeys(zf.open(prefix + "data.pkl")).load()
        data = {}
        for name, (key, offset, numel) in keys.items():
            zi = infos[f"{prefix}data/{key}"]
            f.seek(zi.header_offset)
            sig, nlen, elen = struct.unpack("<I22xHH", f.read(30))
            assert sig == 0x04034B50 and offset == 0, (name, sig, offset)
            data[name] = (zi, zi.header_offset + 30 + nlen + elen)
        central, pos = {}, zf.start_dir
        for _ in range(len(infos)):
            f.seek(pos)
            fixed = f.read(46)
            sig, = struct.unpack("<I", fixed[:4])
            assert sig == 0x02014B50, "bad central directory entry"
            nlen, elen, clen = struct.unpack("<HHH", fixed[28:34])
            central[f.read(nlen).decode()] = pos
            pos += 46 + nlen + elen + clen
    return data, central


def write_pth(path: str, entries, dtype, filler: Filler, fsync: bool = False) -> int:
    """A ``torch.save``'d state_dict of random tensors, streamed (see the module docstring)."""
    _layout_pth(path, entries, dtype)
    data, central = _records(path)
    total = 0
    sink = Sink(path, "r+b")
    try:
        for name, shape in entries:
            zi, pos = data[name]
            assert zi.file_size == _nbytes(shape, dtype), name
            first = True
            for arr in filler.chunks(name, shape, dtype):
                sink.put(arr, offset=pos if first else None, tag=name)
                first = False
            total += zi.file_size
    finally:
        sink.close()
    with open(path, "r+b") as f:  # CRC-32 in the data descriptor and the central directory
        for name, (zi, pos) in data.items():
            crc = struct.pack("<I", sink.crcs.get(name, 0))
            f.seek(pos + zi.file_size)
            assert f.read(4) == b"PK\x07\x08", "expected a zip data descriptor"
            f.write(crc)
            f.seek(central[zi.filename] + 16)
            f.write(crc)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return total


def write_pth_in_memory(path: str, entries, dtype, filler: Filler) -> int:
    """Reference path: materialises every tensor on the CPU and calls ``torch.save``."""
    import numpy as np
    import torch

    sd = {}
    for name, shape in entries:
        parts = [torch.from_numpy(np.array(a)) for a in filler.chunks(name, shape, dtype)]
        sd[name] = torch.cat(parts).view(dtype).reshape(shape)
    torch.save(sd, path)
    return sum(_nbytes(s, dtype) for _, s in entries)


# ------------------------------------------------------------------ tokenizer
def find_tokenizer(src: str) -> str:
    for cand in (src, os.path.join(src, TOKENIZER_SUBDIR)):
        if os.path.isfile(os.path.join(cand, "tokenizer.json")) or \
                os.path.isfile(os.path.join(cand, "spiece.model")):
            return cand
    raise SystemExit(f"--tokenizer-from {src}: no tokenizer.json or spiece.model there or in "
                     f"{TOKENIZER_SUBDIR}/")


def write_tokenizer(root: str, src: str | None) -> str:
    dst = os.path.join(root, TOKENIZER_SUBDIR)
    if src:
        src = find_tokenizer(src)
        os.makedirs(dst, exist_ok=True)
        for name in sorted(os.listdir(src)):
            if os.path.isfile(os.path.join(src, name)):
                shutil.copy(os.path.join(src, name), os.path.join(dst, name))
        return f"copied from {src}"
    from tests.wan.folders import write_tokenizer as train_tokenizer

    tok = train_tokenizer(dst)
    return f"trained on the fly, vocab {len(tok)}"


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Write a random-weight Wan 2.1 T2V checkpoint folder "
                                             "(official layout).")
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--dit", required=True, choices=DIT_CHOICES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t5", default="umt5-xxl", choices=T5_CHOICES)
    ap.add_argument("--vae", default="wan2.1", choices=VAE_CHOICES)
    ap.add_argument("--tokenizer-from", default=None,
                    help="copy the tokenizer from this folder (or its google/umt5-xxl/)")
    ap.add_argument("--dit-dtype", default="bf16", choices=("bf16", "fp32"),
                    help="DiT safetensors dtype (the real files are fp32)")
    ap.add_argument("--max-shard-gb", type=float, default=10.0,
                    help="DiT shard size limit in GB (1e9 bytes)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="where the random numbers are generated")
    ap.add_argument("--pth-writer", default="stream", choices=("stream", "memory"),
                    help="stream: skip_data layout + in-place fill; memory: plain torch.save")
    ap.add_argument("--fsync", action="store_true", help="fsync every file before timing it")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    import torch

    global _T0
    _T0 = time.time()
    a = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    os.makedirs(a.out, exist_ok=True)
    log(f"writing {a.out}: dit {a.dit} ({a.dit_dtype}), t5 {a.t5}, vae {a.vae}, seed {a.seed}, "
        f"random numbers on {device}")
    sizes = {}

    dit = dit_skeleton(a.dit)
    dit.save_config(a.out)  # config.json exactly as WanModel.save_pretrained writes it
    entries = entries_of(dit) + image_entries(a.dit)
    from configs.wan_dit import get_config
    kind = get_config(a.dit).model_type
    if kind != "t2v":        # the official image models' config.json says which they are
        path = os.path.join(a.out, "config.json")
        with open(path) as f:
            conf = json.load(f)
        conf["model_type"] = kind
        with open(path, "w") as f:
            json.dump(conf, f, indent=2)
    dt = torch.bfloat16 if a.dit_dtype == "bf16" else torch.float32
    log(f"dit: {len(entries)} tensors, {sum(math.prod(s) for _, s in entries) / 1e9:.3f} B params")
    sizes["dit"] = write_dit(a.out, entries, dt, Filler("dit", a.seed, device),
                             int(a.max_shard_gb * 1e9), a.fsync)

    writer = write_pth if a.pth_writer == "stream" else (
        lambda p, e, d, fl, fsync=False: write_pth_in_memory(p, e, d, fl))
    for part, skel, fname, dtype in (("vae", vae_skeleton(a.vae), VAE_FILE, torch.float32),
                                     ("t5", t5_skeleton(a.t5), T5_FILE, torch.bfloat16)):
        entries = entries_of(skel)
        t = time.time()
        sizes[part] = writer(os.path.join(a.out, fname), entries, dtype,
                             Filler(part, a.seed, device), fsync=a.fsync)
        log(f"{part}: {fname} {len(entries)} tensors, {_gb(sizes[part])} in {time.time() - t:.1f} s")

    if kind != "t2v":
        entries = entries_of(clip_skeleton())
        t = time.time()
        sizes["clip"] = writer(os.path.join(a.out, CLIP_FILE), entries, torch.float16,
                               Filler("clip", a.seed, device), fsync=a.fsync)
        log(f"clip: {CLIP_FILE} {len(entries)} tensors, {_gb(sizes['clip'])} in "
            f"{time.time() - t:.1f} s")
    log("tokenizer: " + write_tokenizer(a.out, a.tokenizer_from))
    total = time.time() - _T0
    summary = {"out": os.path.abspath(a.out), "dit": a.dit, "dit_dtype": a.dit_dtype, "t5": a.t5,
               "vae": a.vae, "seed": a.seed, "device": device, "bytes": sizes,
               "total_bytes": sum(sizes.values()), "seconds": round(total, 2)}
    log(f"done: {_gb(summary['total_bytes'])} in {total:.1f} s")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
