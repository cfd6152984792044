"""DISTS (gvc_jax.metrics.dists, gvc_jax.weights.dists): weight tables, file lookup, errors, and
parity with the dists-pytorch wheel's own DISTS class (random VGG16 trunk in torchvision's layout,
the wheel's real alpha/beta)."""
import importlib
import sys
import types

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from gvc_jax.metrics.errors import MetricUnavailable  # noqa: E402
from gvc_jax.metrics.vgg import POOL_TAPS, TORCHVISION_INDEX, l2_pool  # noqa: E402
from gvc_jax.weights import dists as wd  # noqa: E402
from gvc_jax.weights.sources import iter_torch_any, shapes  # noqa: E402
from gvc_jax.weights.table import ConversionError, abstract_targets, check_coverage  # noqa: E402

AB = wd.find_dists_weights()
needs_wheel = pytest.mark.skipif(AB is None, reason="the dists-pytorch wheel is not installed")

# torchvision vgg16 (configuration D): conv widths, "M" = 2x2 max pool
CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
CLASSIFIER_FULL = {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}


def _feature_convs():
    """torchvision ``features`` index -> (out, in) of each 3x3 conv, from CFG_D."""
    out, idx, c = {}, 0, 3
    for v in CFG_D:
        if v == "M":
            idx += 1
        else:
            out[idx] = (v, c)
            idx, c = idx + 2, v
    return out


def _vgg_state(seed=0, classifier=None):
    """A torchvision-layout VGG16 state dict with random He-normal convs (variance-preserving,
    so deep features stay informative) and, by default, a tiny classifier."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (o, c) in _feature_convs().items():
        sd[f"features.{i}.weight"] = torch.randn(o, c, 3, 3, generator=g) * (2.0 / (9 * c)) ** 0.5
        sd[f"features.{i}.bias"] = 0.05 * torch.randn(o, generator=g)
    for i, shape in (classifier or {0: (4, 8), 3: (4, 4), 6: (3, 4)}).items():
        sd[f"classifier.{i}.weight"] = torch.randn(*shape, generator=g)
        sd[f"classifier.{i}.bias"] = torch.randn(shape[0], generator=g)
    return sd


def _isolate_caches(monkeypatch, tmp_path):
    for var, sub in (("TORCH_HOME", "torch_home"), ("XDG_CACHE_HOME", "xdg"), ("HOME", "home")):
        monkeypatch.setenv(var, str(tmp_path / sub))


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """Random trunk saved as .../hub/checkpoints/vgg16-397923af.pth, old-style (pre-zip) format."""
    d = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    d.mkdir(parents=True)
    sd = _vgg_state()
    path = d / wd.VGG16_FILE
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    return path


def _torchvision_stub(vgg_path):
    """A stand-in ``torchvision`` module (not installed here): ``models.vgg16(pretrained=True)``
    builds torchvision's ``features`` layout and loads it from ``vgg_path``."""
    nn = torch.nn

    def vgg16(pretrained=False, **_):
        layers, c = [], 3
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c = v
        net = nn.Module()
        net.features = nn.Sequential(*layers)
        if pretrained:
            sd = torch.load(vgg_path, map_location="cpu", weights_only=True)
            net.features.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                                          if k.startswith("features.")})
        return net

    tv = types.ModuleType("torchvision")
    tv.models = types.ModuleType("torchvision.models")
    tv.models.vgg16 = vgg16
    tv.transforms = types.ModuleType("torchvision.transforms")
    return tv


@pytest.fixture(scope="module")
def reference(vgg_file):
    """The wheel's DISTS module (its own code) on the random trunk and the wheel's alpha/beta."""
    if AB is None:
        pytest.skip("the dists-pytorch wheel is not installed")
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models",
                                             "torchvision.transforms", "DISTS_pytorch",
                                             "DISTS_pytorch.DISTS_pt")}
    tv = _torchvision_stub(vgg_file)
    try:
        sys.modules.update({"torchvision": tv, "torchvision.models": tv.models,
                            "torchvision.transforms": tv.transforms})
        for k in ("DISTS_pytorch", "DISTS_pytorch.DISTS_pt"):
            sys.modules.pop(k, None)
        mod = importlib.import_module("DISTS_pytorch.DISTS_pt")
        model = mod.DISTS(load_weights=False)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    ab = torch.load(AB, map_location="cpu", weights_only=True)
    model.alpha.data, model.beta.data = ab["alpha"], ab["beta"]
    model.eval()

    def run(ref_u8, dist_u8):
        def t(u8):
            return torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float() / 255.0

        with torch.no_grad():
            return model(t(ref_u8), t(dist_u8)).reshape(-1).double().numpy()

    return run


@pytest.fixture(scope="module")
def ours(vgg_file):
    if AB is None:
        pytest.skip("the dists-pytorch wheel is not installed")
    return wd.load_dists(str(vgg_file))


def _pairs(t, h, w, seed):
    """Smooth random frames, and distortions from mild noise to an unrelated frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (t, h // 4 + 1, w // 4 + 1, 3)).astype(np.float64)
    base = np.repeat(np.repeat(base, 4, 1), 4, 2)[:, :h, :w]
    ref = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    dist = ref.astype(np.float64)
    dist[0] += rng.normal(0, 30, dist[0].shape)
    if t > 1:
        dist[1] = rng.integers(0, 256, dist[1].shape)
    if t > 2:
        dist[2] = ref[2]  # identical
    return ref, np.clip(dist, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- parity
@needs_wheel
@pytest.mark.parametrize("t,h,w", [(3, 64, 64), (2, 45, 70)])
def test_parity_with_dists_pytorch(reference, ours, t, h, w):
    ref, dist = _pairs(t, h, w, seed=h * w)
    want = reference(ref, dist)
    got = ours(ref, dist, batch=2)
    assert got.dtype == np.float64 and got.shape == (t,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert got[0] > 1e-3 and (t < 2 or got[1] > got[0])  # a real spread of values was compared
    if t > 2:
        assert abs(got[2]) < 1e-5  # identical frames


@needs_wheel
def test_cached_function_and_input_checks(vgg_file, ours, monkeypatch):
    ref, dist = _pairs(3, 64, 64, seed=64 * 64)
    key = (wd._file_key(str(vgg_file)), wd._file_key(AB))
    monkeypatch.setitem(wd._CACHE, key, ours)          # a cache hit must not load again
    monkeypatch.setattr(wd, "load_dists", lambda *a: pytest.fail("loaded twice"))
    np.testing.assert_array_equal(wd.dists(ref, dist, vgg16=str(vgg_file), batch=2),
                                  ours(ref, dist, batch=2))
    with pytest.raises(ValueError, match="shape mismatch"):
        ours(ref, dist[:, :-1])
    with pytest.raises(ValueError, match="batch"):
        ours(ref, dist, batch=0)


@needs_wheel
def test_cold_cache_loads_once(vgg_file, monkeypatch):
    calls = []

    class Fake:
        trunk_path, weights_path = str(vgg_file), AB

        def __call__(self, ref, dist, *, batch):
            return np.full(ref.shape[0], 0.5)

    monkeypatch.setattr(wd, "_CACHE", {})
    monkeypatch.setattr(wd, "load_dists", lambda vgg16=None: calls.append(vgg16) or Fake())
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    for _ in range(2):
        assert list(wd.dists(frames, frames, vgg16=str(vgg_file))) == [0.5, 0.5]
    assert calls == [str(vgg_file)]


def test_l2_pool_matches_torch_depthwise_conv():
    rng = np.random.default_rng(0)
    pool = jax.jit(l2_pool)
    for h, w in ((8, 8), (7, 1)):
        x = rng.normal(size=(2, h, w, 5)).astype(np.float32)
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        g = (g / g.sum())[None, None].repeat(5, 1, 1, 1)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        want = (F.conv2d(xt ** 2, g, stride=2, padding=1, groups=5) + 1e-12).sqrt()
        got = np.asarray(pool(x))
        np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-7)
    assert POOL_TAPS == (0.25, 0.5, 0.25)


# ---------------------------------------------------------------------- tables and files
def test_tables_cover_full_size_torchvision_trunk_and_real_alpha_beta():
    ab_t, trunk_t = wd.split_targets(abstract_targets(wd.model_factory()))
    full = [(k, tuple(v.shape)) for k, v in _vgg_state(classifier={0: (1, 1)}).items()
            if k.startswith("features.")]
    full += [(f"classifier.{i}.{p}", s if p == "weight" else s[:1])
             for i, s in CLASSIFIER_FULL.items() for p in ("weight", "bias")]
    check_coverage(full, wd.TRUNK_RULES, trunk_t, ignore=wd.TRUNK_IGNORED)
    assert sorted(TORCHVISION_INDEX.values()) == sorted(_feature_convs())
    if AB is not None:
        assert shapes(iter_torch_any(AB)) == {"alpha": (1, 1475, 1, 1), "beta": (1, 1475, 1, 1)}
        check_coverage(shapes(iter_torch_any(AB)).items(), wd.WEIGHT_RULES, ab_t)


@needs_wheel
def test_alpha_beta_are_the_wheels(ours):
    ab = torch.load(AB, map_location="cpu", weights_only=True)
    np.testing.assert_array_equal(np.asarray(ours.model.alpha[...]), ab["alpha"].numpy().ravel())
    np.testing.assert_array_equal(np.asarray(ours.model.beta[...]), ab["beta"].numpy().ravel())


@needs_wheel
def test_bad_trunk_is_conversion_error_and_unavailable(tmp_path):
    sd = _vgg_state()
    del sd["features.28.bias"]
    bad = tmp_path / wd.VGG16_FILE
    torch.save(sd, bad)  # zip format this time
    with pytest.raises(ConversionError, match="not in the checkpoint"):
        wd.convert_dists(str(bad), AB)
    with pytest.raises(MetricUnavailable, match="^DISTS weights unusable: .*not in the checkpoint"):
        wd.load_dists(str(tmp_path))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / wd.VGG16_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(MetricUnavailable, match="DISTS weights unusable"):
        wd.load_dists(str(tmp_path / "junk"))


def test_search_order_and_missing_trunk(tmp_path, monkeypatch):
    _isolate_caches(monkeypatch, tmp_path)
    assert wd.find_vgg16_weights() is None
    paths = wd.vgg16_search_paths()
    assert paths == [str(tmp_path / "torch_home" / "hub" / "checkpoints" / wd.VGG16_FILE),
                     str(tmp_path / "xdg" / "torch" / "hub" / "checkpoints" / wd.VGG16_FILE)]
    with pytest.raises(MetricUnavailable) as e:
        wd.load_dists()
    msg = str(e.value)
    assert "\n" not in msg and wd.VGG16_FILE in msg and paths[0] in msg
    second = tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    second.mkdir(parents=True)
    (second / wd.VGG16_FILE).write_bytes(b"x")
    assert wd.find_vgg16_weights() == str(second / wd.VGG16_FILE)
    assert wd.find_vgg16_weights(str(second)) == str(second / wd.VGG16_FILE)
    assert not wd.official_vgg16(str(second / wd.VGG16_FILE))


def test_missing_wheel_is_unavailable(tmp_path, monkeypatch, vgg_file):
    monkeypatch.setattr(wd, "find_dists_weights", lambda: None)
    with pytest.raises(MetricUnavailable, match=r"dists-pytorch wheel; not found \(pip install"):
        wd.load_dists(str(vgg_file))


# ---------------------------------------------------------------------- GPU, full size
@pytest.mark.gpu
@needs_wheel
def test_parity_720p_on_accelerator(reference, ours):
    """At 720p, with the accelerator's vectorized chunks (CPU runs a chunk one pair at a time)."""
    assert jax.default_backend() != "cpu"
    ref, dist = _pairs(3, 720, 1280, seed=7)
    got = ours(ref, dist, batch=2)
    np.testing.assert_allclose(got, reference(ref, dist), rtol=0, atol=1e-5)
    assert got[0] > 1e-3 and got[1] > got[0] and abs(got[2]) < 1e-5
