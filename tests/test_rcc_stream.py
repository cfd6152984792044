"""rcc as a stream coding (``--coding rcc``, docs/rcc.md): the header says so, the payload is
exactly the planned bits, the decoder replays the encoder bit for bit, a model without a
denoising-error curve is refused, and a damaged payload is a bitstream error."""
from __future__ import annotations

import numpy as np
import pytest

from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import api
from gvc_jax.codec.errors import UsageError

RCC = {"coding": "rcc", "rcc_bits": 64, "rcc_choice_bits": 8}


def _clip():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 2, 2, 3)).repeat(8, 1).repeat(8, 2)
    return np.clip(base + rng.integers(-9, 9, (8, 16, 16, 3)), 0, 255).astype(np.uint8)


def test_rcc_stream_round_trip_and_bits():
    clip = _clip()
    enc, rep = api.compress_video(clip, config="gaussian-fast", overrides=RCC)
    assert enc.header["codec"]["coding"] == "rcc" and enc.header["codec"]["rcc_bits"] == 64
    # 2 latent frames x 8 choices of 8 bits, packed, plus the IDX chunk's GOP number
    assert rep["index_bits_per_gop"] == [128]
    assert rep["breakdown"]["indices"] == 128 // 8 + 4
    frames, _, header = api.decode_bytes(enc.data)
    np.testing.assert_array_equal(frames, enc.recon)
    topm, _ = api.compress_video(clip, config="gaussian-fast")
    assert "coding" not in topm.header["codec"]          # top-M streams are unchanged
    with pytest.raises(UsageError, match="rcc-bits"):
        api.compress_video(clip, config="gaussian-fast", overrides=RCC, kbps=10)


def test_rcc_damaged_payload_is_a_bitstream_error():
    from gvc_jax.bitstream import container

    enc, _ = api.compress_video(_clip(), config="gaussian-fast", overrides=RCC)
    header, chunks = container.read_gvc(enc.data)
    short = [(t, p[:-1] if t == "IDX " else p) for t, p in chunks]
    with pytest.raises(BitstreamError):
        api.decode_bytes(container.dumps_gvc(header, short))


def test_rcc_needs_at_least_one_choice():
    with pytest.raises(UsageError, match="rcc_bits"):
        api.params_for("gaussian-fast", {"coding": "rcc", "rcc_bits": 4})


def test_batch_refuses_rcc(tmp_path, capsys):
    from gvc_jax import cli

    np.save(tmp_path / "a.npy", _clip())
    rc = cli.main(["batch", str(tmp_path / "a.npy"), "-o", str(tmp_path / "out"), "--config",
                   "gaussian-fast", "--coding", "rcc", "--rcc-bits", "64"])
    err = capsys.readouterr().err
    assert rc == 2 and "top-M" in err and not (tmp_path / "out" / "a.gvc").exists()


def test_rcc_stream_with_shifted_candidates_and_groups():
    """``--rcc-candidates shift --rcc-group 2``: the header carries both, one choice serves the
    2 latent frames, the payload is exactly rows x steps x bits, the decoder replays it."""
    clip = _clip()
    over = {**RCC, "rcc_choice_bits": 16, "rcc_candidates": "shift", "rcc_group": 2}
    enc, rep = api.compress_video(clip, config="gaussian-fast", overrides=over)
    codec = enc.header["codec"]
    assert codec["rcc_candidates"] == "shift" and codec["rcc_group"] == 2
    assert rep["index_bits_per_gop"] == [1 * (64 * 2 // 16) * 16]     # 1 row, 8 steps, 16 bits
    assert rep["breakdown"]["indices"] == 128 // 8 + 4
    frames, _, _ = api.decode_bytes(enc.data)
    np.testing.assert_array_equal(frames, enc.recon)
    with pytest.raises(UsageError, match="rcc_choice_bits"):
        api.params_for("gaussian-fast", {**over, "rcc_candidates": "iid", "rcc_choice_bits": 24})
    with pytest.raises(UsageError, match="rcc_group"):
        api.params_for("gaussian-fast", {**over, "rcc_group": 0})


def test_rcc_stream_with_parts():
    """``--rcc-parts 2``: the header carries it, each step codes 2 choices per frame, so the
    payload is 2 rows x (64 // (16 * 2)) steps x 16 bits per latent frame; the decoder replays
    it and a part count that does not fit a row is a usage error."""
    clip = _clip()
    over = {**RCC, "rcc_choice_bits": 16, "rcc_candidates": "shift", "rcc_parts": 2,
            "rcc_tail_steps": 3}
    enc, rep = api.compress_video(clip, config="gaussian-fast", overrides=over)
    assert (enc.header["codec"]["rcc_parts"], enc.header["codec"]["rcc_tail_steps"]) == (2, 3)
    assert rep["index_bits_per_gop"] == [2 * 2 * (64 // 32) * 16]    # 2 frames x 2 parts
    frames, _, _ = api.decode_bytes(enc.data)
    np.testing.assert_array_equal(frames, enc.recon)
    for bad in (0, 5000):
        with pytest.raises(UsageError, match="rcc_parts"):
            api.params_for("gaussian-fast", {**over, "rcc_parts": bad})
    with pytest.raises(UsageError, match="rcc_bits"):
        api.params_for("gaussian-fast", {**over, "rcc_parts": 8})    # 8 x 16 bits > 64
    with pytest.raises(UsageError, match="rcc_tail_steps"):
        api.params_for("gaussian-fast", {**over, "rcc_tail_steps": 0})
    # the tail is the header's: 4 intervals instead of 3 give the same choices, other frames
    other, _ = api.compress_video(clip, config="gaussian-fast",
                                  overrides={**over, "rcc_tail_steps": 4})
    assert other.header["codec"]["rcc_tail_steps"] == 4
    assert not np.array_equal(other.recon, enc.recon)
    # and so is its solver: one multistep call per interval, replayed exactly by the decoder
    multi, _ = api.compress_video(clip, config="gaussian-fast",
                                  overrides={**over, "rcc_tail_solver": "dpm2m"})
    assert multi.header["codec"]["rcc_tail_solver"] == "dpm2m"
    np.testing.assert_array_equal(api.decode_bytes(multi.data)[0], multi.recon)
    assert not np.array_equal(multi.recon, enc.recon)


def test_rcc_shift_layout_too_large_is_a_usage_error():
    """40-bit shifted choices over rows too short for 2^31 bases: a one-line usage error before
    any search (the decoder turns it into a bitstream error)."""
    from types import SimpleNamespace

    from gvc_jax.codec.codings.rcc import spec_for
    from gvc_jax.sampler.rcc import gaussian_error_fn

    model = SimpleNamespace(name="toy", error_fn=lambda shape: gaussian_error_fn(np.ones(64)))
    over = {**RCC, "rcc_choice_bits": 40, "rcc_candidates": "shift", "rcc_bits": 40}
    params = api.params_for("gaussian-fast", over)[2]
    with pytest.raises(UsageError, match="bases"):
        spec_for(model, params, (16, 2, 2, 2))            # rows of 64 values
    assert spec_for(model, params, (64, 2, 4, 4)).bits == 40    # rows of 1024: fine
    over = {**RCC, "rcc_parts": 128, "rcc_bits": 1024}
    params = api.params_for("gaussian-fast", over)[2]
    with pytest.raises(UsageError, match="parts"):
        spec_for(model, params, (16, 2, 2, 2))            # 128 parts of 64 values
