"""LPIPS-Alex v0.1 (gvc_jax.metrics.lpips, loaded by gvc_jax.weights.lpips): weight tables,
file lookup, errors, and parity with an independent torch.nn.functional reference (random
trunk, the wheel's real heads)."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from gvc_jax.weights import lpips as cw  # noqa: E402
from gvc_jax.weights.sources import CheckpointError  # noqa: E402
from gvc_jax.weights.table import ConversionError, abstract_targets, check_coverage  # noqa: E402
from gvc_jax.io import find_sample_clip, read_video  # noqa: E402
from gvc_jax.metrics.errors import MetricUnavailable  # noqa: E402
from gvc_jax.metrics.alexnet import SCALE, SHIFT  # noqa: E402
from gvc_jax.weights.lpips import load as load_lpips, lpips  # noqa: E402

HEADS = cw.find_lpips_heads()
needs_heads = pytest.mark.skipif(HEADS is None, reason="the lpips wheel (its v0.1/alex.pth) is not installed")

# torchvision alexnet().features convs: index -> (out, in, k)
CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
CLASSIFIER = {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}


def _trunk_state(seed=0, classifier_shapes=None):
    """A torchvision-layout AlexNet state dict with random weights (small classifier by default)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (o, c, k) in CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * (2.0 / (c * k * k)) ** 0.5
        sd[f"features.{i}.bias"] = 0.1 * torch.randn(o, generator=g)
    for i, shape in (classifier_shapes or {1: (4, 9), 4: (4, 4), 6: (3, 4)}).items():
        sd[f"classifier.{i}.weight"] = torch.randn(*shape, generator=g)
        sd[f"classifier.{i}.bias"] = torch.randn(shape[0], generator=g)
    return sd


def _isolate_caches(monkeypatch, tmp_path):
    """Points every place find_alexnet_weights searches at empty folders under tmp_path."""
    for var, sub in (("TORCH_HOME", "torch_home"), ("XDG_CACHE_HOME", "xdg"), ("HOME", "home")):
        monkeypatch.setenv(var, str(tmp_path / sub))


@pytest.fixture
def trunk_in_hub(tmp_path, monkeypatch):
    """Random trunk saved as $TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth."""
    _isolate_caches(monkeypatch, tmp_path)
    d = tmp_path / "torch_home" / "hub" / "checkpoints"
    d.mkdir(parents=True)
    sd = _trunk_state()
    torch.save(sd, d / cw.ALEXNET_FILE)
    return sd


# ------------------------------------------------------------- independent reference
def _ref_lpips(ref_u8, dist_u8, trunk, heads):
    """LPIPS-Alex v0.1 written from the paper/package conventions with torch.nn.functional."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def prep(u8):
        x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return (x - shift) / scale

    def feats(x):
        out = []
        for i, pad, pool in ((0, 2, False), (3, 2, True), (6, 1, True), (8, 1, False), (10, 1, False)):
            if pool:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(F.conv2d(x, trunk[f"features.{i}.weight"], trunk[f"features.{i}.bias"],
                                stride=4 if i == 0 else 1, padding=pad))
            out.append(x)
        return out

    with torch.no_grad():
        total = 0.0
        for k, (a, b) in enumerate(zip(feats(prep(ref_u8)), feats(prep(dist_u8)))):
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((na - nb) ** 2, heads[f"lin{k}.model.1.weight"]).mean((2, 3))
    return total.flatten().double().numpy()


def _assert_parity(got, want):
    """The issue's check (1e-4 absolute per frame), plus 1e-4 relative since values are small."""
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=0)


def _real_heads():
    return torch.load(HEADS, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------- constants
def test_scaling_constants_are_imagenet_stats_on_the_unit_scale():
    # the values lpips' ScalingLayer hard-codes, as float32
    np.testing.assert_array_equal(SHIFT, np.float32([-0.030, -0.088, -0.188]))
    np.testing.assert_array_equal(SCALE, np.float32([0.458, 0.448, 0.450]))


# ------------------------------------------------------------------- conversion
@needs_heads
def test_tables_cover_real_heads_and_full_size_torchvision_trunk():
    heads_t, trunk_t = cw.split_targets(abstract_targets(cw.model_factory()))
    shapes = [(k, tuple(load().shape)) for k, load in cw.iter_torch_any(HEADS)]
    assert sorted(k for k, _ in shapes) == [f"lin{i}.model.1.weight" for i in range(5)]
    check_coverage(shapes, cw.HEAD_RULES, heads_t)
    full = [(f"features.{i}.weight", (o, c, k, k)) for i, (o, c, k) in CONVS.items()]
    full += [(f"features.{i}.bias", (o,)) for i, (o, _, _) in CONVS.items()]
    full += [(f"classifier.{i}.{p}", s if p == "weight" else s[:1])
             for i, s in CLASSIFIER.items() for p in ("weight", "bias")]
    check_coverage(full, cw.TRUNK_RULES, trunk_t, ignore=cw.TRUNK_IGNORED)
    with pytest.raises(ConversionError, match="match no rule"):  # the ignore list is needed
        check_coverage(full, cw.TRUNK_RULES, trunk_t)


def test_trunk_file_round_trip_zip_and_legacy(tmp_path):
    sd = _trunk_state(seed=3)
    for legacy in (False, True):
        p = tmp_path / f"t{int(legacy)}.pth"
        torch.save(sd, p, _use_new_zipfile_serialization=not legacy)
        got = {k: load() for k, load in cw.iter_torch_any(str(p))}
        assert sorted(got) == sorted(sd)
        for k, v in sd.items():
            np.testing.assert_array_equal(got[k], v.numpy())


def test_legacy_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "evil.pth"
    torch.save({"x": torch.zeros(2), "y": Evil()}, p, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refusing to load pickled global"):
        list(cw.iter_torch_any(str(p)))


@needs_heads
@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.update({"features.1.weight": torch.zeros(3)}), "match no rule"),
    (lambda sd: sd.pop("features.10.bias"), "not in the checkpoint"),
    (lambda sd: sd.update({"features.3.weight": torch.zeros(192, 64, 3, 3)}), "shape"),
])
def test_bad_trunk_raises_conversion_error(tmp_path, edit, match):
    sd = _trunk_state()
    edit(sd)
    p = tmp_path / cw.ALEXNET_FILE
    torch.save(sd, p)
    with pytest.raises(ConversionError, match=match):
        load_lpips(alexnet=str(p))


# ------------------------------------------------------------------- file lookup
def test_search_order(tmp_path, monkeypatch):
    _isolate_caches(monkeypatch, tmp_path)
    assert cw.find_alexnet_weights() is None
    xdg = tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    home = tmp_path / "torch_home" / "hub" / "checkpoints"
    for d in (xdg, home):
        d.mkdir(parents=True)
    (xdg / cw.ALEXNET_FILE).write_bytes(b"x")
    assert cw.find_alexnet_weights() == str(xdg / cw.ALEXNET_FILE)
    (home / cw.ALEXNET_FILE).write_bytes(b"x")
    assert cw.find_alexnet_weights() == str(home / cw.ALEXNET_FILE)  # $TORCH_HOME first
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("TORCH_HOME")
    assert cw.torch_hub_checkpoint_dirs() == [str(tmp_path / "home" / ".cache" / "torch" / "hub"
                                                  / "checkpoints")]
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert cw.find_alexnet_weights(str(explicit)) == str(explicit)
    assert cw.find_alexnet_weights(str(xdg)) == str(xdg / cw.ALEXNET_FILE)  # a folder
    assert cw.find_alexnet_weights(str(tmp_path / "nope.pth")) is None  # no fallback


def test_missing_trunk_is_metric_unavailable(tmp_path, monkeypatch):
    _isolate_caches(monkeypatch, tmp_path)
    frames = np.zeros((1, 32, 32, 3), np.uint8)
    for call in (load_lpips, lambda: lpips(frames, frames)):
        with pytest.raises(MetricUnavailable) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and cw.ALEXNET_FILE in msg and str(tmp_path / "torch_home") in msg
    with pytest.raises(MetricUnavailable, match="nope.pth"):
        load_lpips(alexnet=str(tmp_path / "nope.pth"))


# ------------------------------------------------------------------------ parity
@needs_heads
def test_parity_random_and_real_frames(trunk_in_hub):
    from gvc_jax.metrics import LPIPS

    model = load_lpips()
    assert isinstance(model, LPIPS) and model.trunk_path.endswith(cw.ALEXNET_FILE)
    heads = _real_heads()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)  # unrelated frames: a large distance
    for ref, dist in ((a, b), (a, c)):
        want = _ref_lpips(ref, dist, trunk_in_hub, heads)
        assert np.all(want > 5e-3)  # not a trivially small distance
        _assert_parity(model(ref, dist), want)

    clip = read_video(find_sample_clip("carphone_pristine.mp4"), max_frames=6).frames
    assert clip.shape == (6, 144, 176, 3)
    ref, dist = clip[:5], clip[1:]  # next frame as the distortion: real motion
    dist = np.clip(dist.astype(int) + rng.integers(-8, 9, dist.shape), 0, 255).astype(np.uint8)
    want = _ref_lpips(ref, dist, trunk_in_hub, heads)
    assert np.all(want > 2e-3)
    got = model(ref, dist, batch=2)  # 5 frames in chunks of 2: the last chunk is padded
    _assert_parity(got, want)
    np.testing.assert_allclose(model(ref, dist, batch=8), got, rtol=0, atol=1e-6)
    # identical frames: zero up to float32 rounding inside XLA's fused normalisation (~1e-15)
    assert np.all(np.abs(model(ref, ref, batch=8)) < 1e-12)
    np.testing.assert_allclose(lpips(ref, dist, batch=2), got, rtol=0, atol=1e-6)


@needs_heads
def test_smallest_frame_and_bad_input(trunk_in_hub):
    model = load_lpips()
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (2, 31, 40, 3), dtype=np.uint8) for _ in range(2))
    _assert_parity(model(a, b), _ref_lpips(a, b, trunk_in_hub, _real_heads()))
    with pytest.raises(MetricUnavailable, match="at least 31 px"):
        model(a[:, :30], b[:, :30])
    with pytest.raises(ValueError, match="shape mismatch"):
        model(a, b[:1])
    with pytest.raises(ValueError, match="uint8"):
        model(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="batch"):
        model(a, b, batch=0)
