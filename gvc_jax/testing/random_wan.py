"""Random-weight Wan 2.1 checkpoint folders to try every mode without downloading weights
(docs/testing.md)::

    python -m gvc_jax.testing.random_wan OUT [--size tiny|full] [--layout official|diffusers]
        [--kind t2v|i2v|flf2v] [--variant NAME] [--seed 0]
    gvc compress clip.mp4 -o clip.gvc --config wan2.1-t2v --weights OUT

OUT is laid out as the download of a released model (``Wan-AI/Wan2.1-*`` or ``*-Diffusers``),
so ``gvc compress --weights OUT`` and ``gvc-convert`` read it like the real one; the pictures
are meaningless, times, memory and bits are real.

* ``--size tiny`` (default): a folder of about 5 MB written in seconds on a CPU
  (:mod:`gvc_jax.testing.random_wan_tiny`); with ``--config wan2.1-t2v``/``wan2.1-i2v``/
  ``wan2.1-flf2v`` it runs the whole codec on a laptop.
* ``--size full``: the released architecture ``--variant`` (t2v: t2v-1.3b, t2v-14b; i2v:
  i2v-14b-720p, i2v-14b-480p; flf2v: flf2v-14b-720p; the first is the default), streamed to
  disk in chunks (:mod:`gvc_jax.testing.random_wan_full`): with the bf16 DiT, T2V 1.3B is
  14.7 GB, T2V 14B 40.4 GB, I2V/FLF2V 14B 47.1 GB.

The command refuses an OUT that exists and is not an empty folder, writes into a temporary
folder beside it and renames that into place at the end, and on Ctrl-C removes it and exits
130, so OUT is either complete or absent. It prints each file with its tensor and parameter
counts. It needs the optional PyTorch stack, which gvc-jax itself does not::

    pip install -e '.[testing]'            # torch, diffusers, transformers, sentencepiece, ...
    pip install --no-deps wan22==2.2.11    # the official Wan code, without its CUDA pins

and a missing piece ends in one ``gvc: error:`` line naming it (exit 2).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time

from gvc_jax.testing import random_wan_tiny as tiny
from gvc_jax.testing.deps import MissingDependency, require

SIZES = ("tiny", "full")
LAYOUTS = ("official", "diffusers")
KINDS = tiny.KINDS
# The released architectures per kind (configs.wan_dit), the default first.
FULL_VARIANTS = {"t2v": ("t2v-1.3b", "t2v-14b"), "i2v": ("i2v-14b-720p", "i2v-14b-480p"),
                 "flf2v": ("flf2v-14b-720p",)}
EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 1, 130


class UsageError(ValueError):
    """A bad command line or output folder."""


def variant_for(size: str, kind: str | None, variant: str | None) -> tuple[str, str]:
    """``(kind, configs.wan_dit name)`` of a folder; ``kind`` None: that of ``variant``, else
    t2v."""
    if kind is None:
        kind = next((k for k, v in FULL_VARIANTS.items() if variant in v), "t2v")
    if kind not in KINDS:
        raise UsageError(f"unknown --kind {kind!r}; known: {', '.join(KINDS)}")
    if size == "tiny":
        if variant not in (None, tiny.DIT_CONFIGS[kind]):
            raise UsageError(f"--size tiny writes {tiny.DIT_CONFIGS[kind]}; --variant is for "
                             "--size full")
        return kind, tiny.DIT_CONFIGS[kind]
    known = FULL_VARIANTS[kind]
    if variant is None:
        return kind, known[0]
    if variant not in known:
        raise UsageError(f"--variant {variant} is not a released {kind} model; "
                         f"known: {', '.join(known)}")
    return kind, variant


def format_count(n: int) -> str:
    """A parameter count with a unit: 999, 48.3 K, 1.42 M, 14.3 B."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def format_bytes(n: int) -> str:
    """A file size with a unit: 512 B, 3.81 MB, 18.9 GB (powers of 1000)."""
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def folder_report(root: str) -> list[dict]:
    """``{"file", "tensors", "params", "bytes"}`` of every weight file under ``root`` (shapes
    read from the headers and pickles, no tensor data), sorted by path."""
    from gvc_jax.weights.sources import iter_safetensors, iter_torch_any, shapes

    out = []
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = os.path.join(d, f)
            if f.endswith(".safetensors"):
                shp = shapes(iter_safetensors(path))
            elif f.endswith(".pth"):
                shp = shapes(iter_torch_any(path))
            else:
                continue
            params = sum(math.prod(int(n) for n in s) for s in shp.values())
            out.append({"file": os.path.relpath(path, root), "tensors": len(shp),
                        "params": params, "bytes": os.path.getsize(path)})
    return out


def _check_out(out: str) -> None:
    if os.path.lexists(out) and not (os.path.isdir(out) and not os.listdir(out)):
        raise UsageError(f"{out}: exists and is not an empty folder; choose a new name")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"{parent}: no such folder")


def write_folder(out, *, size: str = "tiny", layout: str = "official", kind: str | None = None,
                 variant: str | None = None, seed: int = 0, log=None, tmp_hook=None,
                 **full_kw) -> dict:
    """Writes a random Wan folder at ``out`` atomically (a temporary folder beside it, renamed
    into place when complete) and returns a summary (``folder``, ``variant``, ``files`` from
    :func:`folder_report`, ``params``, ``bytes``, ``seconds``). ``out`` must not exist or be an
    empty folder. ``full_kw`` goes to the full-size writers (``dit_dtype``, ``max_shard_gb``,
    ``device``, ``tokenizer_from``). ``tmp_hook(path)`` is told the temporary folder first."""
    out = os.fspath(out)
    if size not in SIZES or layout not in LAYOUTS:
        raise UsageError(f"--size is one of {', '.join(SIZES)} and --layout one of "
                         f"{', '.join(LAYOUTS)}")
    kind, name = variant_for(size, kind, variant)
    _check_out(out)
    require(tiny.NEED)
    t0 = time.time()
    parent = os.path.dirname(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.", suffix=".tmp",
                           dir=parent)
    if tmp_hook:
        tmp_hook(tmp)
    try:
        os.chmod(tmp, 0o755)
        if size == "tiny":
            write = tiny.write_official_folder if layout == "official" else \
                tiny.write_diffusers_folder
            write(tmp, kind=kind, seed=seed)
        else:
            from gvc_jax.testing import random_wan_full as full

            write = full.write_official_full if layout == "official" else \
                full.write_diffusers_full
            write(tmp, dit=name, seed=seed, log=log, **full_kw)
        files = folder_report(tmp)
        if os.path.isdir(out):
            os.rmdir(out)                         # empty (checked above)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"folder": os.path.abspath(out), "size": size, "layout": layout, "kind": kind,
            "variant": name, "seed": seed, "files": files,
            "params": sum(f["params"] for f in files), "bytes": sum(f["bytes"] for f in files),
            "seconds": round(time.time() - t0, 2)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m gvc_jax.testing.random_wan",
        description="Write a Wan 2.1 checkpoint folder with random weights (docs/testing.md).")
    ap.add_argument("out", help="output folder (must not exist, or be empty)")
    ap.add_argument("--size", default="tiny", choices=SIZES,
                    help="tiny: about 5 MB, seconds on a CPU; full: a released architecture")
    ap.add_argument("--layout", default="official", choices=LAYOUTS,
                    help="official (Wan-AI/Wan2.1-*) or diffusers (*-Diffusers)")
    ap.add_argument("--kind", default=None, choices=KINDS,
                    help="default: that of --variant, else t2v")
    ap.add_argument("--variant", default=None,
                    help="--size full: " + "; ".join(f"{k}: {', '.join(v)}"
                                                     for k, v in FULL_VARIANTS.items()))
    ap.add_argument("--seed", type=int, default=0, help="the weights are a function of it")
    full = ap.add_argument_group("--size full")
    full.add_argument("--dit-dtype", default="bf16", choices=("bf16", "fp32"),
                      help="DiT dtype (the released files are fp32)")
    full.add_argument("--max-shard-gb", type=float, default=10.0,
                      help="safetensors shard size limit in GB (1e9 bytes)")
    full.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                      help="where the random numbers are drawn")
    full.add_argument("--tokenizer-from", default=None,
                      help="copy the tokenizer from this folder (or its google/umt5-xxl/)")
    return ap


def _quiet() -> None:
    """No progress bars or hints from transformers and diffusers on the command line."""
    for lib in ("transformers", "diffusers"):
        try:
            mod = __import__(lib)
        except ImportError:
            continue
        mod.utils.logging.set_verbosity_error()
        mod.utils.logging.disable_progress_bar()


def _run(a) -> dict:
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:7.1f}s] {msg}", flush=True)

    kw = {}
    if a.size == "full":
        kw = dict(dit_dtype=a.dit_dtype, max_shard_gb=a.max_shard_gb, device=a.device,
                  tokenizer_from=a.tokenizer_from)
    elif (a.dit_dtype, a.max_shard_gb, a.device, a.tokenizer_from) != ("bf16", 10.0, "auto", None):
        raise UsageError("--dit-dtype, --max-shard-gb, --device and --tokenizer-from are for "
                         "--size full")
    kind, name = variant_for(a.size, a.kind, a.variant)
    _check_out(a.out)
    require(tiny.NEED)
    log(f"writing {a.out}: {a.size} {name}, {a.layout} layout, seed {a.seed}")
    s = write_folder(a.out, size=a.size, layout=a.layout, kind=kind, variant=a.variant,
                     seed=a.seed, log=log, tmp_hook=a.tmp_hook, **kw)
    for f in s["files"]:
        print(f"  {f['file']}: {f['tensors']} tensors, {format_count(f['params'])} params, "
              f"{format_bytes(f['bytes'])}")
    print(f"wrote {s['folder']}: {s['variant']} ({s['layout']}), "
          f"{format_count(s['params'])} params, {format_bytes(s['bytes'])} in "
          f"{s['seconds']:.1f} s")
    config = {"t2v": "wan2.1-t2v", "i2v": "wan2.1-i2v", "flf2v": "wan2.1-flf2v"}[kind]
    print(f"try: gvc compress CLIP -o out.gvc --config {config} --weights {s['folder']}")
    return s


def main(argv=None) -> int:
    """The command; returns its exit status (0, 2 usage or missing package, 1 failure,
    130 interrupted)."""
    try:
        a = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    box: dict = {}
    live: list[str] = []

    def started(tmp):           # the temporary folder exists: Ctrl-C from now on removes it
        live.append(tmp)
        _quiet()

    a.tmp_hook = started

    def work():
        try:
            box["summary"] = _run(a)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            box["error"] = e

    t = threading.Thread(target=work, name="random-wan", daemon=True)
    t.start()
    try:        # the main thread stays free for Ctrl-C while torch runs in native code
        while t.is_alive():
            t.join(0.05)
    except KeyboardInterrupt:
        renamed = bool(live) and not any(os.path.exists(p) for p in live)
        for _ in range(3):       # the worker may still be creating files: sweep until gone
            for p in live:
                shutil.rmtree(p, ignore_errors=True)
            time.sleep(0.05)
        sys.stderr.write(f"\ngvc: error: interrupted; {a.out} "
                         f"{'was complete already' if renamed else 'not written'}\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    e = box.get("error")
    if e is None:
        return EXIT_OK
    if isinstance(e, (UsageError, MissingDependency)):
        print(f"gvc: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(e, KeyboardInterrupt):
        print(f"gvc: error: interrupted; {a.out} not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"gvc: error: {type(e).__name__}: {msg}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
