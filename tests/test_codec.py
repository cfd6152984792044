"""Codec core in-process: GOP planning, bit-exact replay, header/model checks."""
import numpy as np
import pytest
from fractions import Fraction

from gvc_jax import codebook
from gvc_jax.bitstream.errors import BitstreamError
from gvc_jax.codec import core
from gvc_jax.codec.params import CodecParams
from gvc_jax.codec.errors import ModelMismatchError, UsageError
from gvc_jax.codec.geometry import pad_clip, plan_disjoint
from gvc_jax.models.protocol import Geometry
from gvc_jax.codec.codec_model import load_model
from gvc_jax.sampler import SamplerSpec, decode_gop, encode_gop


@pytest.fixture(scope="module")
def model():
    return load_model("gaussian")


def test_plan_gops_and_lengths():
    blocks = Geometry(4, False, 8, 8, 768)
    wan = Geometry(4, True, 16, 8, 16)
    g = plan_disjoint(10, 8, blocks)
    assert [(x.start, x.frames, x.coded) for x in g] == [(0, 8, 8), (8, 2, 4)]
    g = plan_disjoint(40, 33, wan)                           # Wan: T = 1 + 4k
    assert [(x.frames, x.coded) for x in g] == [(33, 33), (7, 9)]
    assert wan.latent_frames(33) == 9 and blocks.latent_frames(16) == 4
    assert wan.coded_length(1) == 1 and blocks.coded_length(5) == 8
    assert wan.padded_size(720, 1279) == (720, 1280) and wan.latent_shape(33, 720, 1280) == \
        (16, 9, 90, 160)
    with pytest.raises(ValueError):
        plan_disjoint(10, 6, blocks)
    with pytest.raises(ValueError):
        wan.latent_shape(32, 720, 1280)
    clip = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    p = pad_clip(clip, 4, 8, 8)
    assert p.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(p[:2, :3, :5], clip)
    np.testing.assert_array_equal(p[3], p[1])                # repeat the last frame
    np.testing.assert_array_equal(p[:2, 7, :5], clip[:, 2])  # replicate the edge


def test_encoder_trajectory_equals_decoder_bit_for_bit(model):
    """The encoder's own final sample equals the decoder's replay from the
    indices (same backend), and both differ from a replay with one index changed."""
    frames = np.random.default_rng(0).integers(0, 256, (8, 16, 24, 3), dtype=np.uint8)
    x0 = model.encode(frames)
    spec = SamplerSpec(n_steps=8, sde_steps=6, K=128, m_per_frame=(3, 5))
    x_T = codebook.init_noise(7, 1, x0.shape)
    idx, sign, x_enc = encode_gop(model.graphdef, model.state, None, x_T, x0, 7, 1, spec=spec)
    assert idx.shape == (6, 2, 5) and sign.shape == (6, 2, 5)
    x_dec = decode_gop(model.graphdef, model.state, None, x_T, idx, sign, 7, 1, spec=spec)
    np.testing.assert_array_equal(np.asarray(x_enc), np.asarray(x_dec))
    # entries beyond M_f = 3 of frame 0 are ignored by the decoder ...
    idx2 = idx.at[:, 0, 3:].set(0)
    x_dec2 = decode_gop(model.graphdef, model.state, None, x_T, idx2, sign, 7, 1, spec=spec)
    np.testing.assert_array_equal(np.asarray(x_dec2), np.asarray(x_dec))
    # ... but a used one matters
    idx3 = idx.at[2, 1, 0].set((idx[2, 1, 0] + 1) % 128)
    x_dec3 = decode_gop(model.graphdef, model.state, None, x_T, idx3, sign, 7, 1, spec=spec)
    assert not np.array_equal(np.asarray(x_dec3), np.asarray(x_dec))


def test_more_atoms_more_rate_better_quality(model):
    rng = np.random.default_rng(1)
    base = rng.integers(60, 200, (1, 4, 4, 3)).repeat(4, 0).repeat(4, 1).repeat(4, 2)
    frames = np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)[:, :16, :16]
    out = {}
    for m in (1, 8):
        p = CodecParams(K=256, M=m, steps=10, sde_steps=8, gop_frames=4)
        enc = core.compress(frames, Fraction(25), model, p)
        mse = np.mean((enc.recon.astype(float) - frames) ** 2)
        out[m] = (len(enc.data), mse)
    assert out[8][0] > out[1][0]
    assert out[8][1] < out[1][1]


def test_decompress_checks_model_and_header(model):
    frames = np.random.default_rng(2).integers(0, 256, (5, 9, 10, 3), dtype=np.uint8)
    p = CodecParams(K=32, M=2, steps=4, sde_steps=3, gop_frames=4)
    enc = core.compress(frames, Fraction(30000, 1001), model, p)
    out, fps, header = core.decompress(enc.data, lambda *_: model)
    assert fps == Fraction(30000, 1001) and out.shape == frames.shape
    np.testing.assert_array_equal(out, enc.recon)

    from gvc_jax.codec.codec_model import CodecModel
    from gvc_jax.models.gaussian import GaussianPrior
    prior = GaussianPrior()
    other = GaussianPrior(np.asarray(prior.mean[...]), np.asarray(prior.var[...]) * 1.5,
                          scale=prior.scale)
    wrong = CodecModel("gaussian", other.fingerprint, other, model.encode, model.decode,
                       model.geometry)
    with pytest.raises(ModelMismatchError):
        core.decompress(enc.data, lambda *_: wrong)
    with pytest.raises(BitstreamError):
        core.decompress(enc.data[:-7], lambda *_: model)
    with pytest.raises(UsageError):
        core.compress(frames, Fraction(25), model, CodecParams(K=8, M=9))


def test_decoder_refuses_header_parameters_it_cannot_run(model):
    """A well-formed file whose codec parameters this decoder cannot run exactly
    (here M beyond the exact-sum limit, or an unknown schedule) is bad input."""
    from gvc_jax.bitstream import container
    frames = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    enc = core.compress(frames, Fraction(25), model,
                       CodecParams(K=32, M=2, steps=4, sde_steps=3, gop_frames=4))
    for key, value in (("schedule", "cosine"), ("M", [2000])):
        header = dict(enc.header, codec=dict(enc.header["codec"], **{key: value}))
        if key == "M":
            header["codec"]["K"] = 4096
        data = container.dumps_gvc(header, container.read_gvc(enc.data)[1])
        with pytest.raises(BitstreamError, match=rf"bad header: codec\.{key}"):
            core.decompress(data, lambda *_: model)


def test_one_compilation_for_gops_of_one_shape(model):
    """Three GOPs of the same shape: one encoder and one decoder program, reused, and the
    progress ticks carry the step numbers out of the jitted scan."""
    from gvc_jax.sampler import scan

    frames = np.random.default_rng(4).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    p = CodecParams(K=16, M=2, steps=3, sde_steps=2, gop_frames=4, seed=11)
    enc0, dec0 = scan.encode_gop._cache_size(), scan.decode_gop._cache_size()
    steps = []
    enc = core.compress(frames, Fraction(25), model, p, on_step=steps.append)
    assert len(enc.gops) == 3
    assert scan.encode_gop._cache_size() - enc0 == 1
    assert scan.decode_gop._cache_size() - dec0 == 1
    assert sorted(set(steps)) == [0, 1, 2]
