"""`gvc eval` protocols: GVCC's frame construction and rate count, the DCVC planes protocol, the
presets, GVCC's published rows and the BD table (bd.json equal to the bjontegaard package)."""
import json
import warnings

import numpy as np
import pytest

from gvc_jax import cli
from gvc_jax.eval import gvcc, inputs, report, runner
from gvc_jax.eval.compare import compare
from gvc_jax.io import find_sample_clip, read_video
from gvc_jax.io.resize import resize_lanczos
from gvc_jax.io.yuv import (YuvPlanes, read_yuv_planes, rgb_to_yuv420, upsample_chroma_opencv,
                            yuv420_to_rgb, yuv420_to_rgb_gvcc, yuv444_to_rgb_opencv)

GVC = "gaussian-fast:M=2:K=64:gop_frames=8"


# ------------------------------------------------------------------ GVCC's frames
def test_gvcc_conversion_keeps_limited_range_grey():
    y = np.array([[[16, 235], [128, 16]]], np.uint8)
    c = np.full((1, 1, 1), 128, np.uint8)
    rgb = yuv420_to_rgb_gvcc(YuvPlanes(y, c, c))
    assert rgb[0, 0, 0].tolist() == [16, 16, 16]          # black stays 16
    assert rgb[0, 0, 1].tolist() == [235, 235, 235]       # white stays 235
    assert rgb[0, 1, 0].tolist() == [128, 128, 128]
    # the colour-correct BT.709 reading expands the range: 16 -> 0, 235 -> 255
    ok = yuv420_to_rgb(YuvPlanes(y, c, c))
    assert ok[0, 0, 0].tolist() == [0, 0, 0] and ok[0, 0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("yuv", [(100, 150, 90), (60, 200, 60), (200, 40, 220), (16, 16, 240)])
def test_gvcc_colour_is_opencv_analog_yuv(yuv):
    """COLOR_YUV2RGB: R = Y + 1.140 (V-128), G = Y - 0.395 (U-128) - 0.581 (V-128),
    B = Y + 2.032 (U-128), in 14-bit fixed point (at most 1 off the real-valued formula)."""
    y, u, v = (np.full((1, 2, 2), x, np.uint8) for x in yuv)
    got = yuv444_to_rgb_opencv(y, u, v)[0, 0, 0].astype(int)
    Y, du, dv = yuv[0], yuv[1] - 128, yuv[2] - 128
    want = np.clip([Y + 1.140 * dv, Y - 0.395 * du - 0.581 * dv, Y + 2.032 * du], 0, 255)
    assert np.all(np.abs(got - want) <= 1.0), (got, want)


def test_gvcc_chroma_is_bilinear_on_half_pixel_centres():
    c = np.array([[[0, 255]]], np.uint8)                  # one chroma row of two samples
    up = upsample_chroma_opencv(c, 2, 4)
    assert up[0].tolist() == [[0, 64, 191, 255]] * 2      # 0, 1/4, 3/4, 1 of the step


def test_gvcc_matches_opencv_when_installed():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for h, w in ((36, 44), (10, 6), (720, 1280)):
        y = rng.integers(0, 256, (1, h, w), dtype=np.uint8)
        u, v = (rng.integers(0, 256, (1, h // 2, w // 2), dtype=np.uint8) for _ in "uv")
        up = [cv2.resize(p[0], (w, h), interpolation=cv2.INTER_LINEAR) for p in (u, v)]
        want = cv2.cvtColor(np.stack([y[0], *up], -1), cv2.COLOR_YUV2RGB)
        assert np.array_equal(yuv420_to_rgb_gvcc(YuvPlanes(y, u, v))[0], want)


# ------------------------------------------------------------------ GVCC's rate count
def test_gvcc_bit_count():
    assert gvcc.bits_per_atom(16384) == 15 and gvcc.bits_per_atom(64) == 7
    assert gvcc.index_bits(16384, 64, sde_steps=1, latent_frames=1) == 960   # design.md §7
    gop = gvcc.index_bits(16384, 64, sde_steps=17, latent_frames=9)          # 33 frames
    assert gop == 146_880
    r = gvcc.rates(3 * gop, 99, 720, 1280)                 # T2V, 3 GOPs: the published rate
    assert round(r["kbps_gvcc"], 1) == 71.2 and round(r["bpp_gvcc"], 5) == 0.00483
    bd = {"anchors": 1000, "residuals": 500, "indices": 7, "header": 400}
    t2v = gvcc.stream_bits("t2v", "topm", 16384, 64, 17, [9, 9], bd)
    assert t2v["bits_gvcc"] == 2 * gop + 8 * 1500
    i2v = gvcc.stream_bits("i2v", "topm", 16384, 64, 17, [9], bd)   # first frame free
    assert i2v["bits_gvcc"] == gop + 8 * 500 and i2v["parts"]["anchors"] == 0
    flf = gvcc.stream_bits("flf2v", "topm", 16384, 64, 17, [9], {"anchors": 1000})
    assert flf["bits_gvcc"] == gop + 8000                  # boundary frames by their bytes
    assert gvcc.stream_bits("t2v", "rcc", 16384, 64, 17, [9], bd)["bits_gvcc"] is None


# ------------------------------------------------------------------ presets
def _plan(*args):
    from gvc_jax.eval import cli_plan

    return cli_plan.plan_from_args(cli.build_parser().parse_args(["eval", "x.npy", "--out", "o",
                                                                  *args]))


@pytest.fixture
def any_input(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 3), np.uint8))
    monkeypatch.chdir(tmp_path)


def test_gvcc_presets(any_input):
    from configs.eval import GVCC_720P

    for name, mode, frames in (("uvg-720p-gvcc", "t2v", 99), ("uvg-720p-gvcc-i2v", "i2v", 97),
                               ("uvg-720p-gvcc-flf2v", "flf2v", 97)):
        p = _plan("--preset", name, "--gvc", "none")
        assert (p.frames, p.size, p.protocols, p.match_rate) == \
            (frames, (1280, 720), ["gvcc", "ours"], True)
        assert p.baselines == ["x264", "x265", "vvc", "av1"] and p.bd_anchor is None
        mean = [r for r in p.published if r["scope"] == "mean"]
        assert [(r["mode"], r["published"]) for r in mean] == [(mode, True)]
        assert len([r for r in p.published if r["scope"] == "sequence"]) == 7
        assert all("bytes" not in r and "kbps" not in r for r in p.published)
    t2v = [r for r in _plan("--preset", "uvg-720p-gvcc", "--gvc", "none").published
           if r["scope"] == "mean"][0]
    assert (t2v["psnr_rgb"], t2v["lpips"], t2v["kbps_gvcc"]) == (29.01, 0.117, 71.2)
    # T2V at GVCC's 226-token prompt context; I2V and FLF2V at Wan's 512 (the default)
    assert GVCC_720P["t2v"].endswith(":text_len=226")
    assert "text_len" not in GVCC_720P["i2v"] and "text_len" not in GVCC_720P["flf2v"]
    assert _plan("--preset", "uvg-720p-gvcc", "--protocol", "ours",
                 "--gvc", "none").protocols == ["ours"]


def test_gvcc_t2v_preset_parses_text_len(any_input):
    from gvc_jax.codec import params

    if "text_len" not in {f.name for f in params.flag_fields()}:
        pytest.skip("the text_len codec parameter is not in this tree yet")
    (run,) = _plan("--preset", "uvg-720p-gvcc").gvc
    assert dict(run.overrides) == {"K": 16384, "M": 64, "gop_frames": 33, "text_len": 226}


def test_dcvc_preset(any_input):
    p = _plan("--preset", "uvg-1080p-dcvc")
    assert (p.frames, p.size, p.protocols, p.bd_anchor, p.match_rate) == \
        (96, None, ["dcvc"], "vvc", False)
    assert p.ladders["vvc"] == [{"qp": q} for q in (22, 27, 32, 37, 42, 47)]
    assert p.published == []
    assert _plan("--preset", "uvg-1080p-dcvc", "--bd-anchor", "none").bd_anchor is None


@pytest.mark.parametrize("args, msg", [
    (["--protocol", "jvet"], "--protocol: expected a comma list"),
    (["--bd-anchor", "x266", "--baselines", "x265"], "--bd-anchor 'x266' is not one of"),
    (["--bd-method", "linear"], "invalid choice"),
])
def test_usage_errors(tmp_path, capsys, args, msg):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 3), np.uint8))
    rc = cli.main(["eval", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"), "--gvc", "none",
                   *args])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


# ------------------------------------------------------------------ end to end
def _write_uvg(path, planes):
    with open(path, "wb") as f:
        for i in range(planes.shape[0]):
            f.write(planes.y[i].tobytes() + planes.u[i].tobytes() + planes.v[i].tobytes())


@pytest.fixture(scope="module")
def beauty(tmp_path_factory):
    """8 real frames as an 8-bit UVG raw file named like a UVG sequence (48x40)."""
    d = tmp_path_factory.mktemp("uvg")
    rgb = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=8).frames
    path = d / "Beauty_48x40_120fps_420_8bit_YUV.yuv"
    _write_uvg(path, rgb_to_yuv420(rgb[:, 300:340, 600:648].copy()))
    return path


@pytest.fixture(scope="module")
def gvcc_run(beauty, tmp_path_factory):
    """The T2V GVCC preset with the gaussian config in place of Wan, at 32x24: both protocols,
    published rows, a BD table against x265."""
    out = tmp_path_factory.mktemp("gvcc") / "o"
    mp = pytest.MonkeyPatch()
    for var in ("TORCH_HOME", "XDG_CACHE_HOME"):     # no LPIPS/DISTS trunks there
        mp.setenv(var, str(out.parent / "cache"))
    try:
        rc = cli.main(["eval", str(beauty), "--out", str(out), "--preset", "uvg-720p-gvcc",
                       "--gvc", GVC, "--frames", "8", "--size", "32x24", "--baselines", "x265",
                       "--ladder", "x265=crf:30,40", "--no-match-rate", "--bd-anchor", "x265",
                       "--quiet"])
    finally:
        mp.undo()
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_gvcc_protocol_frames_and_rates(gvcc_run, beauty):
    from gvc_jax.codec import api

    out, doc = gvcc_run
    rows = {(r["protocol"], r["codec"], r["setting"]): r for r in doc["rows"]}
    assert {p for p, _, _ in rows} == {"gvcc", "ours"} and len(rows) == 6
    planes = read_yuv_planes(str(beauty), 48, 40)
    refs = {"gvcc": resize_lanczos(yuv420_to_rgb_gvcc(planes), 32, 24),
            "ours": inputs.load_video(str(beauty), frames=8, size=(32, 24)).frames}
    assert not np.array_equal(refs["gvcc"], refs["ours"])
    for protocol, ref in refs.items():
        (ours,) = [r for (p, c, _), r in rows.items() if p == protocol and c.startswith("gvc-")]
        data = (out / ours["settings"]["stream"]).read_bytes()
        decoded = api.decode_bytes(data)[0]
        want = compare(ref, decoded)                       # the row is compare() on its frames
        for k in runner.METRIC_KEYS:
            assert ours[k] == want[k], (protocol, k)
        assert ours["bits"] == 8 * len(data)
        if protocol == "gvcc":     # 17 SDE steps x 2 latent frames x M=2 x 7 bits (K=64)
            assert ours["bits_gvcc"] == 17 * 2 * 2 * 7 == gvcc.index_bits(64, 2, 17, 2)
            assert ours["kbps_gvcc"] == pytest.approx(476 / (8 / 16) / 1000)
            assert ours["bits_gvcc"] < ours["bits"]
        else:
            assert "bits_gvcc" not in ours
    for (p, c, _), r in rows.items():
        if p == "gvcc" and c == "x265":          # a baseline's GVCC count is its file at 16 fps
            assert r["bits_gvcc"] == r["bits"]
            assert r["kbps_gvcc"] == pytest.approx(r["bits"] / (8 / 16) / 1000)
            assert r["kbps"] == pytest.approx(r["bits"] / (8 / 120) / 1000)


def test_published_rows_in_summary_and_json(gvcc_run):
    out, doc = gvcc_run
    md = (out / "summary.md").read_text()
    assert "## GVCC as published (reference rows, not measured here)" in md
    assert "| T2V | 29.01 | 0.117 | 71.2 | 0.00483 | nothing |" in md
    assert "| Beauty | 31.79 |" in md and "| YachtRide | 26.60 |" in md
    assert "GVCC as published for Beauty (T2V, its protocol): PSNR 31.79 dB" in md
    assert "kbps GVCC (16 fps)" in md and "## Beauty, protocol gvcc" in md
    assert "## Beauty, protocol ours" in md
    pub = doc["published"]
    assert pub and all(p["published"] is True and "bytes" not in p for p in pub)
    assert not any(r["codec"] == "GVCC (published)" for r in doc["rows"])
    bd = json.loads((out / "bd.json").read_text())
    assert bd and {b["codec"] for b in bd} == {"gvc-gaussian-fast"}    # never the published
    assert "DISTS column left empty" in md and "--dists-vgg" in md


@pytest.fixture(scope="module")
def dcvc_run(beauty, tmp_path_factory):
    out = tmp_path_factory.mktemp("dcvc") / "o"
    rc = cli.main(["eval", str(beauty), "--out", str(out), "--protocol", "dcvc", "--gvc", "none",
                   "--baselines", "x264,x265", "--ladder", "x264=crf:0,35,45",
                   "--ladder", "x265=crf:25,35,45", "--bd-anchor", "x265", "--no-lpips",
                   "--no-dists", "--quiet"])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_dcvc_codes_and_scores_the_planes(dcvc_run):
    out, doc = dcvc_run
    lossless = [r for r in doc["rows"] if r["setting"] == "crf=0"][0]
    # x264's lossless mode on the source planes: every plane exact
    for k in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv_611", "psnr_yuv_411"):
        assert lossless[k] == 100.0, k
    assert lossless["settings"]["input"] == "4:2:0 planes, coded as given"
    assert lossless["yuv_source"] == "4:2:0 planes of both inputs"
    assert lossless["kbps"] == pytest.approx(lossless["bits"] / (8 / 120) / 1000)
    md = (out / "summary.md").read_text()
    assert "| codec | setting | bytes | bpp | kbps | PSNR YUV 6:1:1 | PSNR Y | PSNR U" in md


def test_bd_json_equals_the_package(dcvc_run):
    bjontegaard = pytest.importorskip("bjontegaard")
    out, doc = dcvc_run
    bd = json.loads((out / "bd.json").read_text())
    assert bd == doc["bd"]
    got = {(b["codec"], b["metric"]): b for b in bd}
    assert {m for _, m in got} == set(report.BD_METRICS)
    assert all(b["anchor"] == "x265" and b["method"] == "pchip" and b["protocol"] == "dcvc"
               for b in bd)

    def curve(codec, metric):
        pts = sorted((r["kbps"], r[metric]) for r in doc["rows"] if r["codec"] == codec)
        return [p[0] for p in pts], [p[1] for p in pts]

    checked = 0
    for metric in ("psnr_rgb", "psnr_yuv_611", "ms_ssim"):
        b = got[("x264", metric)]
        if metric == "ms_ssim":          # 40 px high: below MS-SSIM's 161 px
            assert b["bd_rate_pct"] is None and b["points"] == 0
            continue
        (rt, qt), (ra, qa) = curve("x264", metric), curve("x265", metric)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_rate = bjontegaard.bd_rate(ra, qa, rt, qt, "pchip",
                                            require_matching_points=False, min_overlap=0)
            want_metric = bjontegaard.bd_psnr(ra, qa, rt, qt, "pchip",
                                              require_matching_points=False, min_overlap=0)
        assert b["bd_rate_pct"] == want_rate and b["bd_metric"] == want_metric, metric
        checked += 1
    assert checked == 2
    md = (out / "summary.md").read_text()
    assert "## BD-rate against x265 (pchip)" in md
    assert f"| {got[('x264', 'psnr_yuv_611')]['bd_rate_pct']:.2f} |" in md


def test_dists_column_with_a_model(beauty, tmp_path, monkeypatch):
    """--dists-vgg wiring: the loaded model's values per frame, their mean in the row, the
    summary column and the trunk note (the network itself is tested in test_dists.py)."""
    from gvc_jax.weights import dists as wd

    class FakeDists:
        trunk_path = str(tmp_path / "vgg16-397923af.pth")

        def __call__(self, ref, dist):
            return np.abs(ref.astype(float) - dist.astype(float)).mean(axis=(1, 2, 3)) / 255

    monkeypatch.setattr(wd, "load_dists", lambda vgg16=None: FakeDists())
    monkeypatch.setattr(wd, "find_vgg16_weights", lambda p=None: FakeDists.trunk_path)
    monkeypatch.setattr(wd, "official_vgg16", lambda p: False)
    out = tmp_path / "o"
    rc = cli.main(["eval", str(beauty), "--out", str(out), "--gvc", "none", "--baselines", "x264",
                   "--ladder", "x264=crf:35", "--no-lpips", "--dists-vgg", FakeDists.trunk_path,
                   "--frames", "4", "--quiet"])
    assert rc == 0
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert len(row["per_frame"]["dists"]) == 4
    assert row["dists"] == pytest.approx(np.mean(row["per_frame"]["dists"])) and row["dists"] > 0
    md = (out / "summary.md").read_text()
    assert f"{row['dists']:.4f}" in md and "dists_trunk" in md and "not torchvision's" in md
    assert ",dists," in (out / "results.csv").read_text().splitlines()[0] + ","


def test_unusable_dists_trunk_is_bad_input(beauty, tmp_path, capsys):
    bad = tmp_path / "vgg16-397923af.pth"
    bad.write_bytes(b"not a checkpoint")
    rc = cli.main(["eval", str(beauty), "--out", str(tmp_path / "o"), "--gvc", "none",
                   "--baselines", "x264", "--no-lpips", "--dists-vgg", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 3 and err.startswith("gvc: error: DISTS weights:"), err


@pytest.mark.slow
def test_dists_column_with_a_random_trunk(beauty, tmp_path):
    """The real DISTS network on a random VGG16 trunk: the eval row equals compare() with the
    same model on the same frames (about 20 s on a 2-core CPU)."""
    torch = pytest.importorskip("torch")
    from tests.test_dists import _vgg_state
    from gvc_jax.weights.dists import load_dists

    vgg = tmp_path / "vgg16-397923af.pth"
    torch.save(_vgg_state(), vgg, _use_new_zipfile_serialization=False)
    out = tmp_path / "o"
    rc = cli.main(["eval", str(beauty), "--out", str(out), "--gvc", "none", "--baselines", "x264",
                   "--ladder", "x264=crf:35", "--no-lpips", "--dists-vgg", str(vgg),
                   "--frames", "2", "--quiet"])
    assert rc == 0
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["dists"] is not None and len(row["per_frame"]["dists"]) == 2
    ref = inputs.load_video(str(beauty), frames=2).frames
    # x264 decodes deterministically: recode to get the same frames
    from gvc_jax.eval.baselines import run_baseline
    dec = run_baseline("x264", ref, 120, setting={"crf": 35}).decoded
    assert compare(ref, dec, dists=load_dists(str(vgg)))["dists"] == pytest.approx(row["dists"],
                                                                                  abs=1e-7)
