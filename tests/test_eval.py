"""`gvc eval` end to end on a tiny real clip: the gaussian config and x265, the CSV
columns, the metrics of compare(), the bpp arithmetic, resuming (rows written before the YUV
and DISTS columns included), UVG raw input and the error paths."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gvc_jax import cli
from gvc_jax.eval import inputs, report, runner
from gvc_jax.io import VideoIOError, find_sample_clip, read_video

T, H, W = 8, 168, 176          # >= 161 px a side, so MS-SSIM is defined
GVC = "gaussian-fast:M=2,4:K=64:gop_frames=8"


def _save_alexnet(folder):
    """Random trunk weights in torchvision's layout where torch's hub cache looks."""
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    shapes = {"features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5),
              "features.6": (384, 192, 3, 3), "features.8": (256, 384, 3, 3),
              "features.10": (256, 256, 3, 3)}
    sd = {}
    for k, s in shapes.items():
        fan_in = s[1] * s[2] * s[3]
        sd[k + ".weight"] = torch.randn(*s, generator=g) * (2.0 / fan_in) ** 0.5
        sd[k + ".bias"] = torch.randn(s[0], generator=g) * 0.01
    sd["classifier.1.weight"] = torch.zeros(8, 4)   # present in the real file; ignored
    sd["classifier.1.bias"] = torch.zeros(8)
    ckpt = folder / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(sd, ckpt / "alexnet-owt-7be5be79.pth")


def gvc(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "gvc_jax.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    frames = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=T).frames
    np.save(d / "bunny.npy", frames[:, 300:300 + H, 500:500 + W].copy())
    return d


@pytest.fixture(scope="module")
def first_run(clip, monkeypatch_module):
    torch_home = clip / "torch"
    _save_alexnet(torch_home)
    monkeypatch_module.setenv("TORCH_HOME", str(torch_home))
    out = clip / "out"
    r = gvc("eval", clip / "bunny.npy", "--out", out, "--gvc", GVC, "--baselines", "x265",
            "--ladder", "x265=crf:45", "--match-rate")
    assert r.returncode == 0, r.stderr
    return out, r


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _csv(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_outputs_and_columns(first_run):
    out, r = first_run
    for name in ("results.csv", "results.json", "summary.md", "rd_psnr.png", "rd_psnr_yuv.png",
                 "rd_ms_ssim.png", "rd_lpips.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "rd_dists.png").exists()          # no VGG16 trunk: no DISTS values
    assert (out / "rd_psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == report.COLUMNS
    rows = _csv(out)
    # 2 of ours, 1 ladder point, 2 matched-rate x265 runs
    got = sorted((r["codec"], r["setting"]) for r in rows)
    assert [c for c, _ in got].count("gvc-gaussian-fast") == 2
    assert ("x265", "crf=45") in got
    assert sum(s.startswith("match_kbps=") for c, s in got if c == "x265") == 2
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["rows"]) == len(rows)
    assert doc["command"].startswith("gvc eval ") and "--match-rate" in doc["command"]
    md = (out / "summary.md").read_text()
    assert "gvc-gaussian-fast" in md and "x265" in md
    assert "DISTS column left empty" in md and "--dists-vgg" in md
    assert all(r["protocol"] == "ours" for r in rows)


def test_bpp_arithmetic_and_real_sizes(first_run):
    out, _ = first_run
    doc = json.loads((out / "results.json").read_text())
    for r in doc["rows"]:
        assert (r["frames"], r["height"], r["width"]) == (T, H, W)
        assert r["bits"] == 8 * r["bytes"]
        assert r["bpp"] == pytest.approx(r["bits"] / (T * H * W), rel=1e-12)
        assert r["kbps"] == pytest.approx(r["bits"] / (T / r["fps"]) / 1000, rel=1e-12)
        assert r["fps"] == 25.0
        for k in ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv_611", "psnr_yuv_411",
                  "ms_ssim", "lpips"):
            assert r[k] is not None and np.isfinite(r[k]), k
            assert len(r["per_frame"][k]) == T
            assert r[k] == pytest.approx(np.mean(r["per_frame"][k]))
        for k in ("psnr_rgb", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv_611", "psnr_yuv_411"):
            assert np.isfinite(r[k + "_seq"]), k
        assert r["psnr_yuv_611"] == pytest.approx(
            (6 * r["psnr_y"] + r["psnr_u"] + r["psnr_v"]) / 8)
        assert r["dists"] is None and "DISTS column left empty" in r["notes"]["dists"]
        if r["codec"].startswith("gvc-"):   # ours: the stream on disk is what was counted
            assert os.path.getsize(out / r["settings"]["stream"]) == r["bytes"]
        else:
            assert r["settings"]["encoder"] == "libx265"
    ours = sorted(r["bpp"] for r in doc["rows"] if r["codec"].startswith("gvc-"))
    assert ours[0] < ours[1]                 # M=2 codes fewer bits than M=4


def test_rows_are_compare_of_the_decoded_stream(first_run, clip):
    """Each row's metrics are compare() of the reference and the decoded file (LPIPS, from the
    same call, checked against its own per-frame values)."""
    from gvc_jax.codec import api
    from gvc_jax.eval.compare import compare

    out, _ = first_run
    doc = json.loads((out / "results.json").read_text())
    ref = np.load(clip / "bunny.npy")
    row = [r for r in doc["rows"] if r["codec"].startswith("gvc-")][0]
    decoded = api.decode_bytes((out / row["settings"]["stream"]).read_bytes())[0]
    want = compare(ref, decoded)
    for k in runner.METRIC_KEYS:
        if k != "lpips":
            assert row[k] == want[k], k
    assert {k: v for k, v in row["per_frame"].items() if k != "lpips"} == want["per_frame"]
    assert row["lpips"] == np.mean(row["per_frame"]["lpips"])


def test_rows_from_before_the_new_columns(first_run, clip, tmp_path, capsys):
    """A results folder whose rows lack the protocol, YUV and DISTS keys resumes: nothing is
    rerun and the reports show those cells empty."""
    import shutil

    out, _ = first_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    drop = {"protocol", "dists", "yuv_source", "psnr_u", "psnr_v", "psnr_yuv_611",
            "psnr_yuv_411", "psnr_u_seq", "psnr_v_seq", "psnr_yuv_611_seq", "psnr_yuv_411_seq"}
    rows = [json.loads(x) for x in (old / runner.ROWS_FILE).read_text().splitlines()]
    (old / runner.ROWS_FILE).write_text("".join(
        json.dumps({k: v for k, v in r.items() if k not in drop}) + "\n" for r in rows))
    rc = cli.main(["eval", str(clip / "bunny.npy"), "--out", str(old), "--gvc", GVC,
                   "--baselines", "x265", "--ladder", "x265=crf:45", "--match-rate"])
    err = capsys.readouterr().err
    assert rc == 0 and "..." not in err, err
    got = _csv(old)
    assert len(got) == 5 and all(r["psnr_yuv_611"] == "" and r["dists"] == "" for r in got)
    assert all(r["psnr_rgb"] != "" for r in got)
    assert "## bunny, protocol ours" in (old / "summary.md").read_text()


def test_matched_rate_is_the_best_knob_within_our_rate(first_run):
    out, _ = first_run
    doc = json.loads((out / "results.json").read_text())
    ours = {round(r["kbps"], 3) for r in doc["rows"] if r["codec"].startswith("gvc-")}
    matched = [r for r in doc["rows"] if r["setting"].startswith("match_kbps=")]
    assert {r["settings"]["match"]["target_kbps"] for r in matched} == ours
    for r in matched:
        m = r["settings"]["match"]
        probes = dict((q, k) for q, k in m["probes"])
        q = m["chosen"]["crf"]
        if m["outcome"].startswith("target below"):
            assert q == 51 and probes[51] > m["target_kbps"]
        else:
            assert r["kbps"] <= m["target_kbps"] + 1e-9
            assert probes[q - 1] > m["target_kbps"]   # one step better overshoots


def test_rerun_skips_finished_rows_and_resumes(first_run, clip):
    out, _ = first_run
    rows_file = out / runner.ROWS_FILE
    lines = rows_file.read_text().splitlines()
    assert len(lines) == 5
    # an interrupted run: drop the last row and leave a torn line behind
    rows_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    r = gvc("eval", clip / "bunny.npy", "--out", out, "--gvc", GVC, "--baselines", "x265",
            "--ladder", "x265=crf:45", "--match-rate")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("...") == 1        # only the missing row ran
    new = [json.loads(x) for x in rows_file.read_text().splitlines() if x.endswith("}")]
    assert len(new) == 5
    assert (json.loads(lines[-1])["codec"], json.loads(lines[-1])["setting"]) == \
        (new[-1]["codec"], new[-1]["setting"])


def test_changed_geometry_refuses_the_folder(first_run, clip, capsys):
    out, _ = first_run
    code = cli.main(["eval", str(clip / "bunny.npy"), "--out", str(out), "--frames", "4",
                     "--baselines", "none", "--quiet"])
    assert code == cli.EXIT_USAGE
    assert "use another --out" in capsys.readouterr().err


@pytest.mark.parametrize("args, code, msg", [
    (["--gvc", "gaussian:Q=3"], 2, "unknown codec parameter"),
    (["--gvc", "wan2.1-t2v-14b"], 2, "needs --weights"),
    (["--baselines", "x266"], 2, "unknown 'x266'"),
    (["--ladder", "x265=speed:3"], 2, "knob is crf, qp or kbps"),
    (["--baselines", "vvc", "--ladder", "vvc=crf:30"], 2, "the ladder knob is 'qp'"),
    (["--kbps", "0"], 2, "positive numbers"),
    (["--size", "12by3"], 2, "WIDTHxHEIGHT"),
    (["--preset", "nope"], 2, "unknown --preset"),
])
def test_usage_errors(clip, tmp_path, capsys, args, code, msg):
    rc = cli.main(["eval", str(clip / "bunny.npy"), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert rc == code and msg in err and err.startswith("gvc: error:") and err.count("\n") == 1


def test_missing_input_is_bad_input(tmp_path, capsys):
    rc = cli.main(["eval", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")])
    assert rc == cli.EXIT_BAD_INPUT and "no such file" in capsys.readouterr().err


def _bt709_yuv420(rgb):
    x = rgb.astype(np.float64) / 255
    y = 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]
    cb, cr = (x[..., 2] - y) / 1.8556, (x[..., 0] - y) / 1.5748
    t, h, w = y.shape
    sub = lambda c: c.reshape(t, h // 2, 2, w // 2, 2).mean((2, 4))  # noqa: E731
    return (np.rint(16 + 219 * y).astype(np.uint8), np.rint(128 + 224 * sub(cb)).astype(np.uint8),
            np.rint(128 + 224 * sub(cr)).astype(np.uint8))


def test_uvg_raw_yuv_is_read_as_bt709_limited(tmp_path):
    rgb = read_video(find_sample_clip("bigbuckbunny.mp4"), max_frames=3).frames[:, 200:236,
                                                                                 600:644]
    y, u, v = _bt709_yuv420(rgb)
    path = tmp_path / "Bunny_44x36_25fps_420_8bit_YUV.yuv"
    with open(path, "wb") as f:
        for i in range(3):
            f.write(y[i].tobytes() + u[i].tobytes() + v[i].tobytes())
    got = inputs.load_video(str(path))
    assert got.frames.shape == rgb.shape and got.fps == 25
    err = np.abs(got.frames.astype(int) - rgb.astype(int))
    # 4:2:0 and 8-bit rounding only; a BT.601 reading of these colours is off by far more
    assert err.mean() < 2.0, err.mean()
    assert inputs.video_name(str(path)) == "Bunny"
    two = inputs.load_video(str(path), frames=2, size=(22, 18))
    assert two.frames.shape == (2, 18, 22, 3)
    with pytest.raises(VideoIOError, match="needs 5"):
        inputs.load_video(str(path), frames=5)


def test_uvg_name_rules(tmp_path):
    spec = inputs.parse_uvg_name("Beauty_1920x1080_120fps_420_8bit_YUV.yuv")
    assert (spec.width, spec.height, spec.fps, spec.bits) == (1920, 1080, 120, 8)
    assert spec.frame_bytes == 1920 * 1080 * 3 // 2
    assert inputs.parse_uvg_name("A_64x32_30fps_420_10bit_YUV.yuv").frame_bytes == 64 * 32 * 3
    with pytest.raises(VideoIOError, match="UVG-style name"):
        inputs.parse_uvg_name("clip.yuv")
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.y4m").write_bytes(b"")
    (tmp_path / "list.txt").write_text("a.mp4  # comment\n\n")
    assert inputs.list_inputs([str(tmp_path / "list.txt")]) == [str(tmp_path / "a.mp4")]
    with pytest.raises(VideoIOError, match="share the name"):
        inputs.list_inputs([str(tmp_path / "a.mp4"), str(tmp_path / "b")])


def test_gvc_spec_grid():
    runs = runner.parse_gvc_spec("gaussian:M=4,16:K=64,128")
    assert len(runs) == 4 and {dict(r.overrides)["M"] for r in runs} == {4, 16}
    assert runner.parse_gvc_spec("gaussian") == [runner.GvcRun("gaussian")]


def test_unreachable_target_is_recorded_not_fatal(clip, tmp_path, capsys):
    """x264 refuses a 1 kbps target on this clip: the run goes on, the failure is listed in
    the summary and kept out of the tables, and a rerun does not retry it."""
    out = tmp_path / "o"
    args = ["eval", str(clip / "bunny.npy"), "--out", str(out), "--gvc", "none",
            "--baselines", "x264", "--ladder", "x264=crf:51", "--kbps", "1", "--no-lpips",
            "--frames", "4", "--quiet"]
    assert cli.main(args) == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert [r["setting"] for r in doc["rows"] if r["codec"] == "x264"] == ["crf=51"]
    assert len(doc["failed"]) == 1 and "bitrate is too low" in doc["failed"][0]["failed"]
    assert "Runs that failed" in (out / "summary.md").read_text()
    n = len((out / runner.ROWS_FILE).read_text().splitlines())
    assert cli.main(args) == 0
    assert len((out / runner.ROWS_FILE).read_text().splitlines()) == n


def test_presets_resolve(clip):
    from gvc_jax.codec.api import params_for
    from gvc_jax.eval import cli_plan

    a = cli.build_parser().parse_args(["eval", str(clip / "bunny.npy"), "--out", "o",
                                       "--preset", "uvg-720p-gaussian"])
    plan = cli_plan.plan_from_args(a)
    assert (plan.frames, plan.size, plan.match_rate) == (99, (1280, 720), True)
    assert plan.baselines == ["x264", "x265", "vvc", "av1"]
    (run,) = plan.gvc
    _, _, p = params_for(run.config, dict(run.overrides))
    assert (run.config, p.K, p.M, p.gop_frames) == ("gaussian", 16384, 64, 32)
    a = cli.build_parser().parse_args(["eval", str(clip / "bunny.npy"), "--out", "o",
                                       "--preset", "uvg-720p-gvcc-i2v", "--frames", "33"])
    plan = cli_plan.plan_from_args(a)
    (run,) = plan.gvc
    assert plan.frames == 33 and run.config == "wan2.1-i2v-14b-720p"
    assert dict(run.overrides) == {"K": 16384, "M": 64, "M_tail": 128, "gop_frames": 33}


def test_wrong_alexnet_file_is_bad_input(clip, tmp_path, capsys):
    bad = tmp_path / "alexnet-owt-7be5be79.pth"
    bad.write_bytes(b"not a checkpoint")
    rc = cli.main(["eval", str(clip / "bunny.npy"), "--out", str(tmp_path / "o"), "--gvc",
                   "none", "--baselines", "x265", "--lpips-alexnet", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_BAD_INPUT and err.startswith("gvc: error: LPIPS weights:"), err
